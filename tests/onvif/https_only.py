"""A device configured as the image is (onvif.plain_http = false, notify_allow = []): ONVIF on
HTTPS only (the web listener), plain HTTP refused with where to go, discovery announcing only
https:// addresses, push subscriptions refused until an administrator names the VMS; then the
administrator allows plain HTTP and names 127.0.0.1 in the web settings, and both work.
Prints one JSON object.
Usage: https_only.py --web-port P --onvif-port P --discovery-port P --user U --password W
"""

import argparse
import json
import os
import re
import socket
import sys
import uuid

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from discovery_messages import PROBE  # noqa: E402
from hostile import envelope, token, wait_until_serving  # noqa: E402

SUBSCRIBE = (
    '<wsnt:Subscribe xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
    "<wsnt:ConsumerReference><wsa:Address>http://127.0.0.1:9/consumer</wsa:Address>"
    "</wsnt:ConsumerReference><wsnt:InitialTerminationTime>PT60S</wsnt:InitialTerminationTime>"
    "</wsnt:Subscribe>"
)


def main():
    parser = argparse.ArgumentParser()
    for name in ("--web-port", "--onvif-port", "--discovery-port"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    secure = httpx.Client(timeout=10, verify=False)  # the appliance's self-signed certificate
    plain = httpx.Client(timeout=10)
    https_url = f"https://127.0.0.1:{args.web_port}/onvif/device_service"
    http_url = f"http://127.0.0.1:{args.onvif_port}/onvif/device_service"
    events_url = f"https://127.0.0.1:{args.web_port}/onvif/events_service"
    wait_until_serving(secure, https_url)

    def soap(client, url, body):
        response = client.post(url, content=envelope(body, token(args.user, args.password)).encode(),
                               headers={"Content-Type": "application/soap+xml"})
        reason = re.findall(r"<s:Text[^>]*>([^<]*)</s:Text>", response.text)
        return {"status": response.status_code, "text": (reason or [response.text])[0][:300]}

    def xaddrs():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            s.sendto(PROBE.format(id=uuid.uuid4()).encode(), ("127.0.0.1", args.discovery_port))
            data = s.recvfrom(65536)[0].decode()
        return re.search(r"XAddrs>([^<]*)<", data).group(1).split()

    seen = {"before": {
        "https": soap(secure, https_url, "<tds:GetSystemDateAndTime/>"),
        "plain": soap(plain, http_url, "<tds:GetSystemDateAndTime/>"),
        "xaddrs": xaddrs(),
        "subscribe": soap(secure, events_url, SUBSCRIBE),
    }}
    web = f"https://127.0.0.1:{args.web_port}"
    login = secure.post(f"{web}/api/v1/session", json={"user": args.user, "password": args.password})
    assert login.status_code == 200, login.text
    change = secure.put(f"{web}/api/v1/settings",
                        json={"onvif": {"plain_http": True, "event_consumers": "127.0.0.1, 10.9.8.0/24"}},
                        headers={"X-CSRF-Token": login.json()["csrf_token"]})
    seen["settings"] = {"status": change.status_code, "onvif": change.json().get("onvif")}
    bad = secure.put(f"{web}/api/v1/settings", json={"onvif": {"event_consumers": "vms.example"}},
                     headers={"X-CSRF-Token": login.json()["csrf_token"]})
    seen["bad_consumer"] = {"status": bad.status_code, "text": bad.text[:200]}
    seen["after"] = {
        "plain": soap(plain, http_url, "<tds:GetSystemDateAndTime/>"),
        "xaddrs": xaddrs(),
        "subscribe": soap(secure, events_url, SUBSCRIBE),
    }
    print(json.dumps(seen), flush=True)


main()
