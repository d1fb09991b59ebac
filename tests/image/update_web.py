"""The web UI's update page as a browser drives it, through QEMU's forwarded HTTPS port
(127.0.0.1): logs in as admin (changing the first password when the appliance asks), then
either uploads a bundle (the body streamed from the file, as the page's upload does) or
reads the update status. Prints one JSON object for appliance/tests/image.rs to judge.

    update_web.py --https-port P --password PW [--new-password NEW] (--upload FILE | --status)
"""

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request


class Session:
    def __init__(self, port):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the image test checks the fingerprint elsewhere
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        self.base = f"https://127.0.0.1:{port}"
        self.cookie = None
        self.csrf = None

    def call(self, method, path, body=None, headers=None, timeout=60):
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, method=method, data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=timeout) as answer:
                text = answer.read()
                status = answer.status
                cookie = answer.headers.get("Set-Cookie")
        except urllib.error.HTTPError as error:
            text, status, cookie = error.read(), error.code, None
        if cookie:
            self.cookie = cookie.split(";")[0]
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode(errors="replace")

    def login(self, password, new_password, deadline_s=300):
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                status, me = self.call("POST", "/api/v1/session", {"user": "admin", "password": password})
                break
            except OSError as error:  # the daemon is still starting
                if time.monotonic() > deadline:
                    raise SystemExit(f"update_web: no login answer: {error!r}")
                time.sleep(1)
        if status != 200:
            raise SystemExit(f"update_web: login answered {status}: {me}")
        self.csrf = me["csrf_token"]
        if me.get("must_change_password"):
            status, answer = self.call("POST", "/api/v1/session/password",
                                       {"current": password, "new": new_password})
            if status != 204:
                raise SystemExit(f"update_web: password change answered {status}: {answer}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--https-port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--new-password", default="update-test-password-2")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--upload")
    what.add_argument("--status", action="store_true")
    args = parser.parse_args()
    session = Session(args.https_port)
    session.login(args.password, args.new_password)
    if args.status:
        status, answer = session.call("GET", "/api/v1/system/update")
    else:
        size = os.path.getsize(args.upload)
        with open(args.upload, "rb") as bundle:
            status, answer = session.call(
                "POST", "/api/v1/system/update", bundle,
                {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                timeout=1800)
    print(json.dumps({"status": status, "answer": answer}))


if __name__ == "__main__":
    sys.exit(main())
