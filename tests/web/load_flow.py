"""Reads a camera's load the way an operator's dashboard would, over HTTPS (Python stdlib
only): logs in, then polls /api/v1/cameras (at most DEADLINE seconds) until the camera has
analysed frames and dropped some, then reads /metrics. Prints one JSON object of what it saw
for the Rust test (appliance/tests/load.rs) to judge."""
import json
import ssl
import sys
import time
import urllib.request
import http.cookiejar

https_port, first_password, camera = sys.argv[1], sys.argv[2], sys.argv[3]
DEADLINE = 180
base = f"https://127.0.0.1:{https_port}"
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the appliance's self-signed certificate
opener = urllib.request.build_opener(
    urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
)
csrf = None


def call(method, path, body=None):
    headers = {"Content-Type": "application/json"}
    if csrf:
        headers["X-CSRF-Token"] = csrf
    data = None if body is None else json.dumps(body).encode()
    with opener.open(urllib.request.Request(base + path, method=method, data=data, headers=headers), timeout=30) as r:
        return r.read()


csrf = json.loads(call("POST", "/api/v1/session", {"user": "admin", "password": first_password}))["csrf_token"]
call("POST", "/api/v1/session/password", {"current": first_password, "new": "a longer new password"})
seen = {"polls": 0}
started = time.monotonic()
while time.monotonic() - started < DEADLINE:
    seen["polls"] += 1
    cameras = json.loads(call("GET", "/api/v1/cameras"))
    load = next(c for c in cameras if c["id"] == camera).get("load")
    seen["load"] = load
    if load and load["analysed_frames"] > 0 and load["dropped_frames"] > 0 and load["analysed_fps"] > 0:
        break
    time.sleep(0.5)
seen["metrics"] = [line for line in call("GET", "/metrics").decode().splitlines() if camera in line]
print(json.dumps(seen))
