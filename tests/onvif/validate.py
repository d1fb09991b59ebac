"""Validates the device's responses against the official ONVIF schemas (the WSDL/XSD files of
the onvif-zeep-async wheel) with lxml: for each operation, the element inside the SOAP Body
must be valid for its WSDL's schema. Prints one JSON object: operation -> list of errors
(empty when valid).
"""

import argparse
import json
import os
import sys

import httpx
import onvif
from lxml import etree

sys.path.insert(0, os.path.dirname(__file__))
from hostile import envelope, token, wait_until_serving  # noqa: E402

WSDL_DIR = os.path.join(os.path.dirname(onvif.__file__), "wsdl")
XS = "http://www.w3.org/2001/XMLSchema"


def schema_of(wsdl_file):
    """The WSDL's embedded schema, compiled with its imports resolved from the WSDL's folder."""
    path = os.path.join(WSDL_DIR, wsdl_file)
    wsdl = etree.parse(path)
    embedded = wsdl.find(f".//{{{XS}}}schema")
    document = etree.ElementTree(embedded)
    document.docinfo.URL = path
    standalone = etree.fromstring(etree.tostring(embedded), base_url=path)
    return etree.XMLSchema(standalone)


OPERATIONS = [
    ("devicemgmt.wsdl", "device_service", "<tds:GetSystemDateAndTime/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetDeviceInformation/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetServices><tds:IncludeCapability>true</tds:IncludeCapability></tds:GetServices>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetServiceCapabilities/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetScopes/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetHostname/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetNetworkInterfaces/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetNetworkProtocols/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetDNS/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetNTP/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetUsers/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetDiscoveryMode/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetWsdlUrl/>"),
    ("devicemgmt.wsdl", "device_service", "<tds:GetEndpointReference/>"),
    ("media.wsdl", "media_service", "<trt:GetServiceCapabilities/>"),
    ("media.wsdl", "media_service", "<trt:GetProfiles/>"),
    ("media.wsdl", "media_service", "<trt:GetProfile><trt:ProfileToken>{profile}</trt:ProfileToken></trt:GetProfile>"),
    ("media.wsdl", "media_service", "<trt:GetVideoSources/>"),
    ("media.wsdl", "media_service", "<trt:GetVideoSourceConfigurations/>"),
    ("media.wsdl", "media_service", "<trt:GetVideoEncoderConfigurations/>"),
    ("media.wsdl", "media_service", "<trt:GetMetadataConfigurations/>"),
    ("media.wsdl", "media_service", "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{profile}</trt:ProfileToken></trt:GetStreamUri>"),
    ("media.wsdl", "media_service", "<trt:GetSnapshotUri><trt:ProfileToken>{profile}</trt:ProfileToken></trt:GetSnapshotUri>"),
    ("events.wsdl", "events_service", "<tev:GetServiceCapabilities xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\"/>"),
    ("events.wsdl", "events_service", "<tev:GetEventProperties xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\"/>"),
    ("events.wsdl", "events_service", "<tev:CreatePullPointSubscription xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\"/>"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--profile", required=True)
    args = parser.parse_args()
    schemas = {}
    results = {}
    client = httpx.Client(timeout=10)
    wait_until_serving(client, f"http://127.0.0.1:{args.port}/onvif/device_service")
    for wsdl, service, body in OPERATIONS:
        if wsdl not in schemas:
            schemas[wsdl] = schema_of(wsdl)
        body = body.format(profile=args.profile)
        response = client.post(
            f"http://127.0.0.1:{args.port}/onvif/{service}",
            content=envelope(body, token(args.user, args.password)).encode(),
            headers={"Content-Type": "application/soap+xml; charset=utf-8"},
        )
        name = body.split(">")[0].split()[0].lstrip("<").rstrip("/").split(":")[1]
        document = etree.fromstring(response.content)
        answer = document.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]
        answer = etree.fromstring(etree.tostring(answer))
        schema = schemas[wsdl]
        errors = [] if response.status_code == 200 else [f"HTTP {response.status_code}"]
        if not schema.validate(answer):
            errors += [f"line {e.line}: {e.message}" for e in schema.error_log]
        results[f"{service}:{name}"] = errors
    # The validator must be able to fail: an answer without its required Model is invalid.
    broken = etree.fromstring(
        '<tds:GetDeviceInformationResponse xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        "<tds:Manufacturer>x</tds:Manufacturer></tds:GetDeviceInformationResponse>")
    results["_broken_answer_is_refused"] = [] if not schemas["devicemgmt.wsdl"].validate(broken) else ["accepted"]
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
