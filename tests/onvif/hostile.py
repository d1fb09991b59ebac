"""Sends the device what it must refuse, with plain HTTP (httpx), and checks after each case
that it still answers. Prints one JSON object: case -> {"status", "subcodes", "reason"}.
"""

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import re
import time

import httpx

SOAP = "http://www.w3.org/2003/05/soap-envelope"


def token(user, password, created=None, nonce=None):
    nonce = nonce or os.urandom(16)
    created = created or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    return (
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
        'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">'
        f"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"
        '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">'
        f"{digest}</wsse:Password>"
        f'<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-soap-message-security-1.0#Base64Binary">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def envelope(body, header=""):
    return (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}" '
            'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
            'xmlns:tt="http://www.onvif.org/ver10/schema">'
            f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>")


def outcome(response):
    text = response.text
    return {
        "status": response.status_code,
        "subcodes": re.findall(r"<s:Value>([^<]+)</s:Value>", text)[1:] if "Fault" in text else [],
        "reason": (re.findall(r'<s:Text[^>]*>([^<]*)</s:Text>', text) or [""])[0],
        "challenge": response.headers.get_list("www-authenticate"),
    }


def wait_until_serving(client, url, timeout=120):
    """The daemon loads its models before it serves: wait for it, with a deadline."""
    deadline = time.time() + timeout
    while True:
        try:
            response = client.post(url, content=envelope("<tds:GetSystemDateAndTime/>").encode(),
                                   headers={"Content-Type": "application/soap+xml; charset=utf-8"})
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.time() > deadline:
            raise SystemExit(f"the device at {url} did not answer")
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--viewer", required=True)
    parser.add_argument("--viewer-password", required=True)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/onvif/device_service"
    media_url = f"http://127.0.0.1:{args.port}/onvif/media_service"
    client = httpx.Client(timeout=10)
    headers = {"Content-Type": "application/soap+xml; charset=utf-8"}

    def post(body, header="", target=url, http=client, **extra):
        return outcome(http.post(target, content=envelope(body, header).encode(), headers=headers, **extra))

    def alive():
        return post("<tds:GetSystemDateAndTime/>")["status"] == 200

    wait_until_serving(client, url)

    results = {}
    admin = lambda **k: token(args.admin, args.admin_password, **k)
    viewer = lambda **k: token(args.viewer, args.viewer_password, **k)

    results["open_operation"] = post("<tds:GetSystemDateAndTime/>")
    results["no_credentials"] = post("<tds:GetDeviceInformation/>")
    results["good_token"] = post("<tds:GetDeviceInformation/>", admin())
    results["wrong_password"] = post("<tds:GetDeviceInformation/>", token(args.admin, "not-the-password"))
    replayed = admin()
    results["first_use"] = post("<tds:GetDeviceInformation/>", replayed)
    results["replayed_nonce"] = post("<tds:GetDeviceInformation/>", replayed)
    stale = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["stale_created"] = post("<tds:GetDeviceInformation/>", admin(created=stale))
    results["viewer_reads_media"] = post("<trt:GetProfiles/>", viewer(), target=media_url)
    results["viewer_reads_users"] = post("<tds:GetUsers/>", viewer())
    results["viewer_creates_user"] = post(
        "<tds:CreateUsers><tds:User><tt:Username>eve</tt:Username><tt:Password>x</tt:Password>"
        "<tt:UserLevel>Administrator</tt:UserLevel></tds:User></tds:CreateUsers>", viewer())
    results["admin_reads_users"] = post("<tds:GetUsers/>", admin())
    results["unknown_operation"] = post("<tds:GetSomethingElse/>", admin())
    results["malformed_xml"] = outcome(client.post(url, content=b"<s:Envelope xmlns:s='" + SOAP.encode() + b"'><s:Body><x></s:Body>", headers=headers))
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
            + f']><s:Envelope xmlns:s="{SOAP}"><s:Body><x>&lol9;</x></s:Body></s:Envelope>')
    results["entity_bomb"] = outcome(client.post(url, content=bomb.encode(), headers=headers))
    external = (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                f'<s:Envelope xmlns:s="{SOAP}"><s:Body><x>&e;</x></s:Body></s:Envelope>')
    results["external_entity"] = outcome(client.post(url, content=external.encode(), headers=headers))
    results["oversized_body"] = outcome(client.post(url, content=b"<" + b"a" * (2 * 1024 * 1024) + b"/>", headers=headers))
    deep = "<a>" * 100 + "</a>" * 100
    results["too_deep"] = post(deep)
    results["soap11"] = outcome(client.post(url, content=b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><x/></e:Body></e:Envelope>', headers=headers))
    results["http_digest"] = outcome(client.post(
        url, content=envelope("<tds:GetDeviceInformation/>").encode(), headers=headers,
        auth=httpx.DigestAuth(args.admin, args.admin_password)))
    results["http_digest_wrong"] = outcome(client.post(
        url, content=envelope("<tds:GetDeviceInformation/>").encode(), headers=headers,
        auth=httpx.DigestAuth(args.admin, "wrong")))
    results["alive_after_all"] = {"status": 200 if alive() else 0}

    # Failed attempts are rate-limited per address: from 127.0.0.2, five wrong passwords,
    # then even the right one is refused for a while; 127.0.0.1 is not affected.
    other = httpx.Client(timeout=10, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    for _ in range(5):
        post("<tds:GetDeviceInformation/>", token(args.admin, "guess"), http=other)
    results["rate_limited"] = post("<tds:GetDeviceInformation/>", admin(), http=other)
    results["other_address_unaffected"] = post("<tds:GetDeviceInformation/>", admin())
    # SystemReboot restarts the service: it answers first, then comes back.
    results["system_reboot"] = post("<tds:SystemReboot/>", admin())
    # The new process loads its models before it listens: seconds of silence.
    went_down = False
    deadline = time.time() + 10
    while time.time() < deadline and not went_down:
        try:
            went_down = post("<tds:GetSystemDateAndTime/>")["status"] != 200
        except httpx.TransportError:
            went_down = True
        time.sleep(0.05)
    results["went_down"] = {"status": 200 if went_down else 0}
    wait_until_serving(client, url)
    results["back_after_reboot"] = post("<tds:GetDeviceInformation/>", admin())
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
