"""Live alert latency of a camera with and without a video import running beside it.

The daemon (`vigil run`, 127.0.0.1 only) analyses the test video served in real time by
tools/rtsp_server.py as camera cam1 and prints its events; with `import`, the same clip is
uploaded for import (camera `archive`) as soon as cam1 streams. Printed: the FaceMatched
alerts of cam1 and their latency from the frame's arrival to the alert, and the import job.

Usage (DATA: a data directory with the video's people enrolled and an administrator
`boss` with password `boss-password-1`, e.g. `vigil user set boss --level administrator`):
    python3 tools/measure_import_priority.py DATA PORT none|import
"""
import json, subprocess, sys, time, threading, os, statistics
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
VIGIL = os.environ.get("VIGIL", os.path.join(ROOT, "target/release/vigil"))
VIDEO = os.path.join(os.environ.get("VIGIL_TESTDATA", os.path.join(ROOT, "../shared/testdata")), "video/faces_720p.mp4")
data, port, with_import = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "import"
srv = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tools/rtsp_server.py"), "--file", VIDEO, "--port", "0"], stdout=subprocess.PIPE, text=True)
url = srv.stdout.readline().split()[1]
cfg = os.path.join(data, "vigil.toml")
open(cfg, "w").write(f'[[camera]]\nid = "cam1"\nurl = "{url}"\nfps = 5\n[web]\nlisten = "127.0.0.1:{port}"\n[onvif]\nlisten = "127.0.0.1:0"\ndiscovery_interfaces = []\n')
d = subprocess.Popen([VIGIL, "--data-dir", data, "run", "--events", "stdout", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
lat, started = [], None
def curl(*a):
    return subprocess.run(["curl", "-sk", "-b", f"{data}/jar", "-c", f"{data}/jar", *a], capture_output=True, text=True).stdout
for line in d.stdout:
    e = json.loads(line)
    if e["type"] == "CameraStateChanged" and e["state"] == "streaming" and started is None:
        started = time.time()
        if with_import:
            body = json.loads(curl("-H", "Content-Type: application/json", "-d", '{"user":"boss","password":"boss-password-1"}', f"https://127.0.0.1:{port}/api/v1/session"))
            csrf = body["csrf_token"]
            threading.Thread(target=lambda: print("upload:", curl("-H", f"X-CSRF-Token: {csrf}", "-F", "camera=archive", "-F", "start=2026-11-28T08:00:00Z", "-F", f"clip=@{VIDEO}", f"https://127.0.0.1:{port}/api/v1/imports")[:80])).start()
    if e["type"] == "FaceMatched" and not e["upgrade"]:
        from datetime import datetime
        t = datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
        lat.append((time.time() - t) * 1000)
    if e["type"] == "CameraStateChanged" and e["state"] == "failed" and started:
        break
if with_import:
    jobs = json.loads(curl(f"https://127.0.0.1:{port}/api/v1/imports"))
    for j in jobs: print("import job:", j["status"], j["percent"], "sightings", j["sightings"], "created", j["created"], "updated", j["updated"])
d.terminate(); d.wait(); srv.kill()
print(f"{'with' if with_import else 'without'} import: {len(lat)} FaceMatched alerts, latency from frame arrival median {statistics.median(lat):.0f} ms, max {max(lat):.0f} ms")
