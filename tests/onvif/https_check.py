"""The ONVIF services over HTTPS: the self-signed certificate verifies for 127.0.0.1 when
trusted explicitly, service addresses in answers are https://, and a client limited to
TLS 1.1 is refused. Prints one JSON object.
"""

import argparse
import json
import os
import ssl
import sys

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from hostile import envelope, token, wait_until_serving  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    url = f"https://127.0.0.1:{args.port}/onvif/device_service"
    # The certificate exists once the daemon serves; wait without trusting anything yet.
    wait_until_serving(httpx.Client(timeout=10, verify=False), url)
    trusted = ssl.create_default_context(cafile=args.certificate)
    client = httpx.Client(timeout=10, verify=trusted)
    response = client.post(url, content=envelope(
        "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
        token(args.user, args.password)).encode(), headers={"Content-Type": "application/soap+xml"})
    result = {"status": response.status_code, "https_xaddr": f"<tt:XAddr>https://127.0.0.1:{args.port}/onvif/device_service</tt:XAddr>" in response.text,
              "tls_version": None, "tls11_refused": False, "untrusted_refused": False}
    with trusted.wrap_socket(__import__("socket").create_connection(("127.0.0.1", args.port)), server_hostname="127.0.0.1") as s:
        result["tls_version"] = s.version()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
    except (ssl.SSLError, ValueError):
        pass
    try:
        with old.wrap_socket(__import__("socket").create_connection(("127.0.0.1", args.port))) as s:
            result["tls11_refused"] = False
    except ssl.SSLError as error:
        result["tls11_refused"] = True
        result["tls11_error"] = str(error)
    try:
        httpx.Client(timeout=10).post(url, content=b"")
    except httpx.TransportError:
        result["untrusted_refused"] = True
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
