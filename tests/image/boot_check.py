"""What a booted appliance image serves through QEMU's forwarded ports (127.0.0.1): the ONVIF
device answers GetSystemDateAndTime over HTTPS to the client Home Assistant uses
(onvif-zeep-async; without credentials, as the first admin password opens no ONVIF door until it
is changed), refuses ONVIF over plain HTTP (403, the image serves it over HTTPS only), and
the web UI's login page answers over HTTPS with the certificate whose fingerprint the first
boot showed on the console, and takes the first admin password. Prints one JSON object for
the Rust test (appliance/tests/image.rs) to judge (with --old-password, also how a login
with it is answered); waits for the ports with a deadline.
"""

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import socket
import ssl
import sys
import urllib.error
import urllib.request

import onvif
from onvif import ONVIFCamera


async def onvif_time(port, user, password, deadline_s):
    wsdl = os.path.join(os.path.dirname(onvif.__file__), "wsdl")
    camera = ONVIFCamera("https://127.0.0.1", port, user, password, wsdl, no_cache=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        try:
            device = await camera.create_devicemgmt_service()
            answer = await device.authless_GetSystemDateAndTime()
            break
        except Exception as error:  # refused until the daemon (re)starts listening
            if loop.time() > deadline:
                raise SystemExit(f"boot_check: no GetSystemDateAndTime answer: {error!r}")
            await asyncio.sleep(1)
    utc = answer.UTCDateTime
    device_time = dt.datetime(utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour,
                              utc.Time.Minute, utc.Time.Second, tzinfo=dt.timezone.utc)
    await camera.close()
    return {"type": answer.DateTimeType,
            "skew_s": abs((device_time - dt.datetime.now(dt.timezone.utc)).total_seconds())}


def onvif_plain_status(port):
    """The status plain HTTP answers an ONVIF request with (the image: 403)."""
    body = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
            b'<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')
    request = urllib.request.Request(f"http://127.0.0.1:{port}/onvif/device_service", method="POST",
                                     data=body, headers={"Content-Type": "application/soap+xml"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def login(opener, port, password):
    """[status, must_change_password] of a login as admin."""
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/api/v1/session", method="POST",
        data=json.dumps({"user": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=30) as answer:
            return [answer.status, json.loads(answer.read()).get("must_change_password")]
    except urllib.error.HTTPError as error:
        return [error.code, None]


def web(port, password, old_password):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # judged below by the console's fingerprint
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with context.wrap_socket(raw) as tls:
            certificate = tls.getpeercert(binary_form=True)
            version = tls.version()
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    with opener.open(f"https://127.0.0.1:{port}/", timeout=30) as page:
        body = page.read()
        status = page.status
    seen = {"page_status": status, "login_form": b'id="login-form"' in body,
            "tls_version": version,
            "certificate_sha256": hashlib.sha256(certificate).hexdigest(),
            "login": login(opener, port, password)}
    if old_password:
        seen["old_login"] = login(opener, port, old_password)
    return seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--onvif-port", type=int, required=True)
    parser.add_argument("--https-port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--old-password", help="a password that must no longer work")
    parser.add_argument("--wait", type=float, default=300)
    args = parser.parse_args()
    seen = {"onvif": asyncio.run(onvif_time(args.https_port, "admin", args.password, args.wait)),
            "onvif_plain_status": onvif_plain_status(args.onvif_port)}
    seen["web"] = web(args.https_port, args.password, args.old_password)
    print(json.dumps(seen))


if __name__ == "__main__":
    sys.exit(main())
