"""Writes the seed corpus's client messages: what onvif-zeep-async (Home Assistant's ONVIF
client) and WSDiscovery really send. Run by hand, with the pinned clients of tools/setup.sh:

    PYTHONPATH=.deps/python python3 tests/fuzz/capture.py --port PORT --user U --password P

against a `vigil run` listening on 127.0.0.1:PORT (a user U made with `vigil user set`).
Every request body zeep posts is recorded as it goes on the wire (soap/, and the ones
carrying a WS-Security UsernameToken under wsse/ with the token's values replaced by the
placeholders the harness fills in: NONCE, CREATED, DIGEST, user `fuzz`). The WS-Discovery
Probes are serialised by WSDiscovery's own code (no network), and the Digest Authorization
headers by requests' and httpx's Digest implementations against a challenge of the device's
form (nonce and response replaced by the placeholders NONCE and RESPONSE).
"""

import argparse
import asyncio
import hashlib
import os
import re
import sys

import httpx
import onvif
import requests.auth
from onvif import ONVIFCamera
from onvif import zeep_aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
SEEN = set()


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()[:12]
    if (target, digest) in SEEN:
        return
    SEEN.add((target, digest))
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, f"{name}-{digest}.xml" if target != "digest" else f"{name}-{digest}.txt"), "wb") as f:
        f.write(data)


def operation_of(body):
    match = re.search(rb"<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?(\w+)", body)
    return match.group(1).decode() if match else "request"


def placeholders(body):
    """The UsernameToken's values as placeholders the harness fills in per input."""
    body = re.sub(rb"(<(?:[\w-]+:)?Username>)[^<]*(<)", rb"\1fuzz\2", body)
    body = re.sub(rb"(<(?:[\w-]+:)?Password[^>]*>)[^<]*(<)", rb"\1DIGEST\2", body)
    body = re.sub(rb"(<(?:[\w-]+:)?Nonce[^>]*>)[^<]*(<)", rb"\1NONCE\2", body)
    body = re.sub(rb"(<(?:[\w-]+:)?Created[^>]*>)[^<]*(<)", rb"\1CREATED\2", body)
    return body


def record(data):
    op = operation_of(data)
    if b"UsernameToken" in data:
        write("wsse", op, placeholders(data))
        write("soap", op, data)
    else:
        write("soap", op, data)


original = zeep_aiohttp.AIOHTTPTransport._post_internal


async def recording(self, address, message, headers):
    data = message.encode("utf-8") if isinstance(message, str) else message
    record(data)
    return await original(self, address, message, headers)


zeep_aiohttp.AIOHTTPTransport._post_internal = recording


async def soap(port, user, password):
    wsdl = os.path.join(os.path.dirname(onvif.__file__), "wsdl")
    camera = ONVIFCamera("127.0.0.1", port, user, password, wsdl, no_cache=True)
    for _ in range(600):
        try:
            await camera.update_xaddrs()
            break
        except Exception:  # not listening yet
            await asyncio.sleep(0.2)
    device = await camera.create_devicemgmt_service()
    await device.GetSystemDateAndTime()
    await camera.get_capabilities()
    await device.GetDeviceInformation()
    await device.GetNetworkInterfaces()
    await device.GetScopes()
    await device.GetDiscoveryMode()
    await device.GetUsers()
    await device.SetScopes({"Scopes": ["onvif://www.onvif.org/location/fuzz&lab"]})
    try:
        await device.CreateUsers({"User": [{"Username": "fuzzer", "Password": "fuzz-password-1", "UserLevel": "Operator"}]})
        await device.DeleteUsers({"Username": ["fuzzer"]})
    except Exception as error:  # a fault is still a recorded request
        print(f"capture: users: {error}", file=sys.stderr)
    media = await camera.create_media_service()
    profiles = await media.GetProfiles()
    await media.GetVideoSources()
    for profile in profiles[:1]:
        await media.GetStreamUri({"ProfileToken": profile.token,
                                  "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}})
        await media.GetSnapshotUri({"ProfileToken": profile.token})
    events = await camera.create_events_service()
    await events.GetEventProperties()
    try:
        pullpoint = await camera.create_pullpoint_manager(__import__("datetime").timedelta(seconds=60), lambda: None)
        await pullpoint.set_synchronization_point()
        service = pullpoint.get_service()
        await service.PullMessages({"MessageLimit": 10, "Timeout": "PT1S"})
        await pullpoint.shutdown()
    except Exception as error:
        print(f"capture: pull point: {error}", file=sys.stderr)
    await camera.close()


def discovery():
    from wsdiscovery import QName, Scope
    from wsdiscovery.actions.probe import constructProbe
    from wsdiscovery.actions.resolve import constructResolve
    from wsdiscovery.message import createSOAPMessage

    nvt = QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter")
    device = QName("http://www.onvif.org/ver10/device/wsdl", "Device")
    probes = {
        "probe": constructProbe([], []),
        "probe-nvt": constructProbe([nvt], []),
        "probe-device-scope": constructProbe([device], [Scope("onvif://www.onvif.org/name")]),
        "resolve": constructResolve("urn:uuid:00000000-0000-0000-0000-000000000000"),
    }
    for name, env in probes.items():
        write("discovery", name, createSOAPMessage(env))


def digest():
    challenge = {"realm": "vigil", "nonce": "NONCE", "qop": "auth"}
    for algorithm in ["MD5", "SHA-256"]:
        auth = requests.auth.HTTPDigestAuth("fuzz", "fuzz-password")
        auth.init_per_thread_state()
        auth._thread_local.chal = dict(challenge, algorithm=algorithm)
        header = auth.build_digest_header("GET", "http://127.0.0.1:8080/onvif/snapshot/cam1.jpg")
        write("digest", f"requests-{algorithm}", re.sub(r'response="[0-9a-f]+"', 'response="RESPONSE"', header))
        auth = httpx.DigestAuth("fuzz", "fuzz-password")
        request = httpx.Request("GET", "http://127.0.0.1:8080/onvif/snapshot/cam1.jpg")
        www = f'Digest realm="vigil", qop="auth", algorithm={algorithm}, nonce="NONCE"'
        response = httpx.Response(401, headers={"WWW-Authenticate": www}, request=request)
        flow = auth.auth_flow(request)
        next(flow)
        sent = flow.send(response)
        header = sent.headers["Authorization"]
        write("digest", f"httpx-{algorithm}", re.sub(r'response="[0-9a-f]+"', 'response="RESPONSE"', header))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    discovery()
    digest()
    if args.port:
        asyncio.run(soap(args.port, args.user, args.password))


if __name__ == "__main__":
    main()
