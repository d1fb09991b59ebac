"""Hostile traffic against a running Vigil on 127.0.0.1, bounded in count and time, with a
legitimate client measured throughout (Python stdlib only). Attackers use other loopback
addresses (127.0.0.2 and up) as LAN neighbours would use theirs. Prints one JSON object of
what it saw, for appliance/tests/hostile.rs to judge:
  - a login flood: LOGINS concurrent wrong-password logins, each from its own address and for
    its own made-up user (so no lock-out stops them: only the bound on password checks does);
  - slow clients: SLOW connections on each listener from one address, each sending half a
    request head, held until the server closes them (it must, by its header timeout).
Usage: hostile_load.py WEB_PORT ONVIF_PORT FIRST_PASSWORD
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

web_port, onvif_port, first_password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
LOGINS = 300
SLOW = 1000
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


def summary(samples):
    ms = sorted(s["ms"] for s in samples)
    return {
        "count": len(samples),
        "not_ok": [s for s in samples if s["status"] != 200][:5],
        "median_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
        "max_ms": round(ms[-1], 1) if ms else None,
    }


def under_attack(name, attack):
    stop, samples = threading.Event(), []
    legit = threading.Thread(target=measure, args=(stop, samples))
    legit.start()
    try:
        seen[name] = attack()
    finally:
        stop.set()
        legit.join()
    seen[name]["legit"] = summary(samples)


# Before any attack.
stop, samples = threading.Event(), []
t = threading.Thread(target=measure, args=(stop, samples))
t.start()
time.sleep(2)
stop.set()
t.join()
seen["quiet"] = {"legit": summary(samples)}


def login_flood():
    def one(i):
        source = f"127.0.{1 + i // 250}.{1 + i % 250}"
        try:
            return https("POST", "/api/v1/session", {"user": f"intruder-{i}", "password": "wrong"},
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


under_attack("login_flood", login_flood)
under_attack("slow_web", lambda: slow_clients(web_port, True))
under_attack("slow_onvif", lambda: slow_clients(onvif_port, False))
seen["stalled_body"] = stalled_body()
print(json.dumps(seen))
