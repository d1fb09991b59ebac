"""The HTTPS session the web test clients share (Python stdlib only): the appliance's
self-signed certificate accepted, cookies kept, the CSRF token sent once logged in."""
import http.cookiejar
import json
import ssl
import urllib.error
import urllib.request


class Client:
    def __init__(self, https_port):
        self.base = f"https://127.0.0.1:{https_port}"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the appliance's self-signed certificate
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = None

    def call(self, method, path, body=None):
        """(status, body bytes, content type); refusals are answers, not exceptions."""
        headers = {"Content-Type": "application/json"}
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, method=method, data=data, headers=headers)
        try:
            with self.opener.open(request, timeout=60) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def json(self, method, path, body=None):
        status, raw, _ = self.call(method, path, body)
        return status, (json.loads(raw) if raw else None)

    def first_login(self, first_password, new_password="a longer new password"):
        """Logs in as admin with the first password and replaces it."""
        _, me = self.json("POST", "/api/v1/session", {"user": "admin", "password": first_password})
        self.csrf = me["csrf_token"]
        self.json("POST", "/api/v1/session/password", {"current": first_password, "new": new_password})
