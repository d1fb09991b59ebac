"""Finds ONVIF devices with WSDiscovery (the PyPI package), the way a VMS does: a Probe to the
WS-Discovery multicast group, with and without types and scopes. Also records Hello and Bye.

Run it where the device's discovery interface is a non-loopback one (WSDiscovery skips
loopback addresses): the test runs both in a network namespace it creates.
Prints one JSON object with what each probe found.
"""

import argparse
import json
import threading
import time

from wsdiscovery import QName, Scope
from wsdiscovery.discovery import ThreadedWSDiscovery

NVT = QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter")
DEVICE = QName("http://www.onvif.org/ver10/device/wsdl", "Device")
OTHER = QName("http://example.invalid/none", "Nothing")


def service_json(service):
    return {
        "epr": service.getEPR(),
        "types": [f"{{{t.getNamespace()}}}{t.getLocalname()}" for t in service.getTypes()],
        "scopes": [s.getValue() for s in service.getScopes()],
        "xaddrs": service.getXAddrs(),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--hello-wait", type=float, default=0.0,
                        help="first wait this long for a Hello (the device is started meanwhile)")
    parser.add_argument("--bye-wait", type=float, default=0.0,
                        help="after probing, wait this long for a Bye (the device is stopped meanwhile)")
    args = parser.parse_args()

    discovery = ThreadedWSDiscovery()
    hellos, byes = [], []
    lock = threading.Lock()

    def on_hello(service):
        with lock:
            hellos.append(service_json(service))

    def on_bye(epr):
        with lock:
            byes.append(epr)

    discovery.setRemoteServiceHelloCallback(on_hello)
    discovery.setRemoteServiceByeCallback(on_bye)
    discovery.start()
    # The client joins the multicast group from a thread that watches the interfaces:
    # wait until it has, or a Hello sent meanwhile would be missed.
    joined = time.time() + 30
    while time.time() < joined and not discovery._networkingThread_v4._multiOutUniInSockets:
        time.sleep(0.05)
    print(json.dumps({"listening": True}), flush=True)
    deadline = time.time() + args.hello_wait
    while time.time() < deadline and not hellos:
        time.sleep(0.05)

    results = {}
    for name, types, scopes in [
        ("any", None, None),
        ("nvt", [NVT], None),
        ("device_and_nvt", [NVT, DEVICE], None),
        ("scope_profile", [NVT], [Scope("onvif://www.onvif.org/Profile/Streaming")]),
        ("scope_prefix", None, [Scope("onvif://www.onvif.org/type")]),
        ("scope_missing", None, [Scope("onvif://www.onvif.org/location/nowhere")]),
        ("type_missing", [OTHER], None),
    ]:
        discovery.clearRemoteServices()
        found = discovery.searchServices(types=types, scopes=scopes, timeout=args.timeout)
        results[name] = [service_json(s) for s in found]
    with lock:
        print(json.dumps({"probes": results, "hellos": hellos}), flush=True)
    deadline = time.time() + args.bye_wait
    while time.time() < deadline and not byes:
        time.sleep(0.05)
    discovery.stop()
    with lock:
        print(json.dumps({"byes": byes}), flush=True)


if __name__ == "__main__":
    main()
