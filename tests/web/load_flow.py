"""Reads a camera's load the way an operator's dashboard would, over HTTPS (Python stdlib
only): logs in, then polls /api/v1/cameras (at most DEADLINE seconds) until the camera has
analysed frames and dropped some, then reads /metrics. Prints one JSON object of what it saw
for the Rust test (appliance/tests/load.rs) to judge."""
import json
import sys
import time

from https_client import Client

https_port, first_password, camera = sys.argv[1], sys.argv[2], sys.argv[3]
DEADLINE = 180
client = Client(https_port)
client.first_login(first_password)


def call(method, path):
    status, body, _ = client.call(method, path)
    assert status == 200, f"{method} {path}: {status} {body!r}"
    return body


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
