"""Drives the appliance's web API over HTTPS as a browser's script would (Python stdlib only):
prints one JSON object of what it saw, for the Rust test to judge."""
import json
import ssl
import sys
import urllib.error
import urllib.request
import http.cookiejar

https_port, http_port, first_password, upload_file = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"https://127.0.0.1:{https_port}"
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the appliance's self-signed certificate
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPCookieProcessor(jar))
seen = {}


def call(method, path, body=None, csrf=None, raw=None, content_type="application/json"):
    headers = {"Content-Type": content_type}
    if csrf:
        headers["X-CSRF-Token"] = csrf
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + path, method=method, data=data, headers=headers)
    try:
        with opener.open(request, timeout=30) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


seen["anonymous_cameras"] = call("GET", "/api/v1/cameras")[0]
seen["wrong_password"] = call("POST", "/api/v1/session", {"user": "admin", "password": "nope"})[0]
status, body, headers = call("POST", "/api/v1/session", {"user": "admin", "password": first_password})
seen["login"] = status
seen["cookie"] = headers.get("set-cookie", "")
me = json.loads(body)
seen["must_change"] = me["must_change_password"]
seen["before_change"] = call("GET", "/api/v1/cameras")[0]
change = {"current": first_password, "new": "a better passphrase"}
seen["change_without_csrf"] = call("POST", "/api/v1/session/password", change)[0]
seen["change"] = call("POST", "/api/v1/session/password", change, me["csrf_token"])[0]
status, body, headers = call("GET", "/api/v1/cameras")
seen["cameras_status"] = status
seen["cameras"] = json.loads(body)
seen["headers"] = {k: headers.get(k, "") for k in ["content-security-policy", "strict-transport-security", "x-frame-options"]}
status, body, _ = call("GET", "/metrics")
seen["metrics"] = body.decode()


def oversized_status():
    """Announces a 200 kB body and waits for the answer before sending it, as a careful
    client does: the server must refuse on the length alone."""
    import socket
    with socket.create_connection(("127.0.0.1", int(https_port)), timeout=30) as raw:
        with ctx.wrap_socket(raw) as tls:
            tls.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n")
            status_line = tls.recv(4096).split(b"\r\n", 1)[0]
            return int(status_line.split()[1])


seen["oversized"] = oversized_status()
status, body, _ = call("GET", "/")
seen["ui"] = status
seen["ui_has_login"] = b'id="login-form"' in body
onvif = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
         '<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')
seen["onvif_over_https"] = call("POST", "/onvif/device_service", raw=onvif.encode(), content_type="application/soap+xml")[0]

# Stored sightings (the test wrote synthetic ones before starting the daemon).
import hashlib
status, body, _ = call("GET", "/api/v1/sightings?camera=cam1&limit=5")
seen["sightings_status"] = status
seen["sightings"] = json.loads(body)
first = seen["sightings"]["sightings"][0]["id"]
status, body, headers = call("GET", f"/api/v1/sightings/{first}/thumbnail")
seen["thumbnail"] = [status, headers.get("content-type"), hashlib.sha256(body).hexdigest()]
status, body, headers = call("GET", "/api/v1/audit?format=csv")
seen["audit_csv"] = [status, headers.get("content-type"), body.decode().splitlines()[0]]

# Live events: the camera's state changes arrive as Server-Sent Events.
request = urllib.request.Request(base + "/api/v1/events")
with opener.open(request, timeout=60) as stream:
    event = None
    for raw_line in stream:
        line = raw_line.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "CameraStateChanged":
            seen["sse"] = json.loads(line.split(":", 1)[1])
            break


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


try:
    urllib.request.build_opener(NoRedirect).open(f"http://127.0.0.1:{http_port}/live", timeout=30)
except urllib.error.HTTPError as e:
    seen["plain_http"] = [e.code, e.headers.get("Location")]


def served_certificate_sha256():
    """The certificate a new connection is served."""
    import hashlib
    import socket
    with socket.create_connection(("127.0.0.1", int(https_port)), timeout=30) as raw:
        with ctx.wrap_socket(raw) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


# Certificate upload: a key of another certificate is refused, the right pair is served at once.
upload = json.load(open(upload_file))
seen["served_before"] = served_certificate_sha256()
mismatched = {"certificate": upload["certificate"], "key": upload["other_key"]}
seen["mismatched_upload"] = call("PUT", "/api/v1/system/certificate", mismatched, me["csrf_token"])[0]
status, body, _ = call("PUT", "/api/v1/system/certificate",
                       {"certificate": upload["certificate"], "key": upload["key"]}, me["csrf_token"])
seen["upload"] = [status, json.loads(body)]
seen["served_after"] = served_certificate_sha256()
print(json.dumps(seen))
