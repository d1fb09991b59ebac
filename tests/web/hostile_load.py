"""Hostile traffic against a running Vigil on 127.0.0.1, bounded in count and time, with a
legitimate client measured throughout (Python stdlib only). Attackers use other loopback
addresses (127.0.0.2 and up) as LAN neighbours would use theirs. Prints one JSON object of
what it saw, for appliance/tests/hostile.rs to judge:
  - a login flood: LOGINS concurrent wrong-password logins, each from its own address and for
    its own made-up user (so no lock-out stops them: only the bound on password checks does);
  - a login flood on a real user: LOGINS concurrent wrong passwords for admin, each from its own
    address (late: it leaves admin locked out for a minute, except where it signed in before);
  - slow clients: SLOW connections on each listener from one address, each sending half a
    request head, held until the server closes them (it must, by its header timeout);
  - a zip bomb uploaded by an operator (entries of zeros unpacking past the upload budget);
  - oversized WS-Security nonces: NONCES requests of a real ONVIF user, each with a 48 KiB nonce;
  - requests without credentials as fast as 4 keep-alive connections go, FLOOD on each listener
    from one address (ONVIF GetSystemDateAndTime, the web's login page);
  - (not with --bench) a stalled request body, and an operator pointing a camera at another
    host without its password (the stored password must not follow it there).
With DAEMON_PID, each attack also reports the daemon's peak resident memory during it (VmHWM,
reset before each attack through /proc/PID/clear_refs). --bench runs the attacks only, so that
the bench can run it against an older daemon too.
Usage: hostile_load.py WEB_PORT ONVIF_PORT FIRST_PASSWORD [DAEMON_PID] [--bench]
"""
import concurrent.futures
import http.client
import json
import resource
import socket
import ssl
import statistics
import sys
import threading
import time
import zipfile
import io
import os

bench = "--bench" in sys.argv
args = [a for a in sys.argv[1:] if a != "--bench"]
web_port, onvif_port, first_password = int(args[0]), int(args[1]), args[2]
daemon_pid = int(args[3]) if len(args) > 3 else None
LOGINS = 300
SLOW = 1000
NONCES = 500
FLOOD = 2000
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the appliance's self-signed certificate
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
seen = {}


def https(method, path, body=None, headers=None, source="127.0.0.1", timeout=30):
    c = http.client.HTTPSConnection("127.0.0.1", web_port, context=ctx, timeout=timeout,
                                    source_address=(source, 0))
    try:
        h = {"Content-Type": "application/json", **(headers or {})}
        c.request(method, path, body=None if body is None else json.dumps(body), headers=h)
        r = c.getresponse()
        return r.status, r.read(), r.getheader("Set-Cookie", "")
    finally:
        c.close()


# Ready: the login answers.
deadline = time.time() + 60
while True:
    try:
        https("GET", "/api/v1/session", timeout=5)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)

# The legitimate operator: logged in, password changed, then a session cookie.
status, body, cookie = https("POST", "/api/v1/session", {"user": "admin", "password": first_password})
assert status == 200, (status, body)
me = json.loads(body)
session = cookie.split(";", 1)[0]
new_password = "a legitimate passphrase"
status, body, _ = https("POST", "/api/v1/session/password", {"current": first_password, "new": new_password},
                        {"Cookie": session, "X-CSRF-Token": me["csrf_token"]})
assert status == 204, (status, body)
status, body, cookie = https("POST", "/api/v1/session", {"user": "admin", "password": new_password})
assert status == 200, (status, body)
session = cookie.split(";", 1)[0]

ONVIF_BODY = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
              b'<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')


def legit_web():
    status, _, _ = https("GET", "/api/v1/system", headers={"Cookie": session}, timeout=10)
    return status


def legit_onvif():
    c = http.client.HTTPConnection("127.0.0.1", onvif_port, timeout=10)
    try:
        c.request("POST", "/onvif/device_service", body=ONVIF_BODY,
                  headers={"Content-Type": "application/soap+xml"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def measure(stop, out):
    """The legitimate client: one web and one ONVIF request every 100 ms until `stop`."""
    while not stop.is_set():
        for name, call in (("web", legit_web), ("onvif", legit_onvif)):
            started = time.perf_counter()
            try:
                status = call()
            except OSError as e:
                status = f"error: {e}"
            out.append({"kind": name, "status": status, "ms": (time.perf_counter() - started) * 1000})
        stop.wait(0.1)


def latencies(samples):
    ms = sorted(s["ms"] for s in samples)
    return {
        "count": len(samples),
        "failed": sum(1 for s in samples if s["status"] != 200),
        "median_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
        "max_ms": round(ms[-1], 1) if ms else None,
    }


def summary(samples):
    out = latencies(samples)
    out["not_ok"] = [s for s in samples if s["status"] != 200][:5]
    for kind in ("web", "onvif"):
        out[kind] = latencies([s for s in samples if s["kind"] == kind])
    return out


def peak_rss_mib():
    with open(f"/proc/{daemon_pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)


def under_attack(name, attack):
    if daemon_pid:
        with open(f"/proc/{daemon_pid}/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size
    stop, samples = threading.Event(), []
    legit = threading.Thread(target=measure, args=(stop, samples))
    legit.start()
    try:
        seen[name] = attack()
    finally:
        stop.set()
        legit.join()
    seen[name]["legit"] = summary(samples)
    if daemon_pid:
        seen[name]["peak_rss_mib"] = peak_rss_mib()


# Before any attack.
stop, samples = threading.Event(), []
t = threading.Thread(target=measure, args=(stop, samples))
t.start()
time.sleep(2)
stop.set()
t.join()
seen["quiet"] = {"legit": summary(samples)}


def login_flood(user=None):
    def one(i):
        source = f"127.0.{1 + i // 250}.{1 + i % 250}"
        try:
            return https("POST", "/api/v1/session", {"user": user or f"intruder-{i}", "password": "wrong"},
                         source=source, timeout=60)[0]
        except OSError as e:
            return f"error: {e}"
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(LOGINS) as pool:
        statuses = list(pool.map(one, range(LOGINS)))
    counts = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return {"statuses": counts, "seconds": round(time.time() - started, 1)}


def slow_clients(port, tls):
    """SLOW connections from 127.0.0.2, each with half a request head; counts those the
    server closed at once (refused) and waits for the server to close the rest."""
    held, refused, failed = [], 0, 0
    started = time.time()
    for _ in range(SLOW):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
        except OSError:
            failed += 1
            continue
        try:
            s = ctx.wrap_socket(raw) if tls else raw
            s.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
            held.append(s)
        except OSError:
            refused += 1
            raw.close()
    # Closed by the server right after the accept: readable, with nothing to read.
    still_open = []
    for s in held:
        s.settimeout(0.01)
        try:
            data = s.recv(1)
            refused += 1 if not data else 0
            s.close()
        except (socket.timeout, ssl.SSLWantReadError):
            still_open.append(s)
        except OSError:
            refused += 1
            s.close()
    held_by_server = len(still_open)
    # The server must close what it held once its header timeout passes (a deadline, not a sleep).
    deadline = time.time() + 60
    closed = 0
    for s in still_open:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            data = s.recv(4096)
            closed += 1  # a 408 answer or the end of the stream
        except OSError:
            pass
        s.close()
    return {"opened": SLOW - failed, "refused_at_once": refused, "held": held_by_server,
            "closed_by_server": closed, "seconds": round(time.time() - started, 1)}


def stalled_body():
    """A request that announces a body and sends a part of it, from 127.0.0.3: the server
    must give up on it once its body idle timeout passes (the test sets 2 s) and answer."""
    started = time.time()
    with socket.create_connection(("127.0.0.1", onvif_port), timeout=60, source_address=("127.0.0.3", 0)) as s:
        s.sendall(b"POST /onvif/device_service HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/soap+xml\r\nContent-Length: 1000\r\n\r\n<s:Envelope")
        try:
            answer = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError as e:
            answer = f"error: {e}"
    return {"answer": answer, "seconds": round(time.time() - started, 1)}


def operator_call(method, path, body=None, content_type="application/json", timeout=120):
    """A request of the logged-in operator (the legitimate session, CSRF token included)."""
    c = http.client.HTTPSConnection("127.0.0.1", web_port, context=ctx, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body)
        c.request(method, path, body=data, headers={"Cookie": session, "X-CSRF-Token": csrf,
                                                    "Content-Type": content_type})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def zip_bomb():
    """80 entries of 20 MiB of zeros each (1.6 GiB unpacked, 1.6 MB sent): each entry within
    the per-photo limit, together past the upload's budget."""
    archive = io.BytesIO()
    zeros = bytes(20 * 1024 * 1024)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for i in range(80):
            z.writestr(f"Mallory/{i}.jpg", zeros)
    status, body = operator_call("POST", "/api/v1/watchlists", {"name": "bombed"})
    assert status == 201, (status, body)
    watchlist = json.loads(body)["id"]
    boundary = "vigil-hostile-boundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"bomb.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode() + archive.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    started = time.time()
    status, body = operator_call("POST", f"/api/v1/watchlists/{watchlist}/enrolments", form,
                                 f"multipart/form-data; boundary={boundary}")
    return {"sent_bytes": len(form), "status": status, "answer": body.decode(errors="replace")[:200],
            "seconds": round(time.time() - started, 1)}


def oversized_nonces():
    """NONCES ONVIF requests of a real user (the operator's password), each with a fresh 48 KiB
    nonce, on 8 connections: a device that remembered them all would hold 24 MB per 500."""
    def one(_):
        body = envelope("<tds:GetSystemDateAndTime/>", token("admin", new_password, nonce=os.urandom(48 * 1024)))
        c = http.client.HTTPConnection("127.0.0.1", onvif_port, timeout=30, source_address=("127.0.0.4", 0))
        try:
            c.request("POST", "/onvif/device_service", body=body.encode(),
                      headers={"Content-Type": "application/soap+xml"})
            r = c.getresponse()
            r.read()
            return r.status
        except OSError as e:
            return f"error: {e}"
        finally:
            c.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(NONCES)))
    counts = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return {"statuses": counts}


def unauthenticated_flood():
    """FLOOD requests without credentials on each listener from 127.0.0.5, on 4 keep-alive
    connections each: how they were answered, and how long it took."""
    def worker(connect, method, path, body, count):
        statuses = {}
        c = connect()
        for _ in range(count):
            try:
                c.request(method, path, body=body, headers={"Content-Type": "application/soap+xml"})
                r = c.getresponse()
                r.read()
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            except OSError as e:
                statuses[f"error: {type(e).__name__}"] = statuses.get(f"error: {type(e).__name__}", 0) + 1
                c.close()
                c = connect()
        c.close()
        return statuses

    def flood(connect, method, path, body):
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            parts = list(pool.map(lambda _: worker(connect, method, path, body, FLOOD // 4), range(4)))
        counts = {}
        for part in parts:
            for k, v in part.items():
                counts[k] = counts.get(k, 0) + v
        return {"statuses": counts, "seconds": round(time.time() - started, 2)}

    onvif_connect = lambda: http.client.HTTPConnection("127.0.0.1", onvif_port, timeout=30,  # noqa: E731
                                                       source_address=("127.0.0.5", 0))
    web_connect = lambda: http.client.HTTPSConnection("127.0.0.1", web_port, context=ctx, timeout=30,  # noqa: E731
                                                      source_address=("127.0.0.5", 0))
    return {"onvif": flood(onvif_connect, "POST", "/onvif/device_service", ONVIF_BODY),
            "web": flood(web_connect, "GET", "/", None)}


def camera_moved_without_password():
    """An operator adds a camera with its password, then points it at a server of theirs (another
    port) giving the same user name and no password: refused, and the camera stays where it was."""
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(8)
    trap.settimeout(0.2)
    camera = {"name": "Door", "url": "rtsp://127.0.0.1:9/door", "username": "viewer",
              "password": "camera secret", "enabled": False}
    status, body = operator_call("PUT", "/api/v1/cameras/door", camera)
    assert status in (200, 201), (status, body)
    moved = dict(camera, url=f"rtsp://127.0.0.1:{trap.getsockname()[1]}/door", enabled=True)
    del moved["password"]
    status, body = operator_call("PUT", "/api/v1/cameras/door", moved)
    _, cameras = operator_call("GET", "/api/v1/cameras")
    door = [c for c in json.loads(cameras) if c["id"] == "door"]
    # Had the move been accepted, the camera's thread would connect at once.
    connected = False
    deadline = time.time() + 3
    while time.time() < deadline and not connected:
        try:
            trap.accept()[0].close()
            connected = True
        except socket.timeout:
            pass
    trap.close()
    return {"status": status, "answer": body.decode(errors="replace")[:200],
            "url_now": door[0]["url"] if door else None, "trap_connected": connected}


status, body, cookie = https("POST", "/api/v1/session", {"user": "admin", "password": new_password})
assert status == 200, (status, body)
session, csrf = cookie.split(";", 1)[0], json.loads(body)["csrf_token"]
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "onvif"))
from hostile import envelope, token  # noqa: E402  (the WS-Security helpers)

under_attack("login_flood", login_flood)
under_attack("slow_web", lambda: slow_clients(web_port, True))
under_attack("slow_onvif", lambda: slow_clients(onvif_port, False))
under_attack("oversized_nonces", oversized_nonces)
under_attack("unauthenticated_flood", unauthenticated_flood)
under_attack("login_flood_admin", lambda: login_flood("admin"))
# Last: an older daemon keeps the bomb's photos resident after it, which would colour the
# peak memory of any attack after it.
under_attack("zip_bomb", zip_bomb)
if not bench:
    seen["stalled_body"] = stalled_body()
    seen["camera_moved"] = camera_moved_without_password()
print(json.dumps(seen))
