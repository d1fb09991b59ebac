"""Sends one WS-Discovery Probe by unicast to DEVICE:3702 from each SOURCE address and says
which got an answer within 3 s: {"SOURCE": true|false, ...}. The device answers only senders
on its interfaces' networks (a probe from elsewhere is most likely spoofed, for reflection).
Usage: unicast_probe.py DEVICE SOURCE..."""
import json
import os
import socket
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from discovery_messages import PROBE  # noqa: E402

device, sources = sys.argv[1], sys.argv[2:]
answered = {}
for source in sources:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(3)
        s.sendto(PROBE.format(id=uuid.uuid4()).encode(), (device, 3702))
        try:
            data, _ = s.recvfrom(65536)
            answered[source] = b"ProbeMatches" in data
        except socket.timeout:
            answered[source] = False
print(json.dumps(answered))
