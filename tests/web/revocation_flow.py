"""One password, two doors (the web and ONVIF), one lock-out, one revocation:
  - the first-start password (shown once, to be changed) opens no ONVIF door until changed;
  - wrong ONVIF passwords for a user lock that user's web logins too (but not from the address
    it signed in from before), and the reverse;
  - a user removed through ONVIF (DeleteUsers, as a VMS administrator would) loses what the web
    side granted it: its browser session and its API token stop working at once, and a new user
    of the same name (CreateUsers) inherits neither.
Prints one JSON object of the statuses seen.
Usage: revocation_flow.py WEB_PORT ONVIF_PORT FIRST_PASSWORD"""
import http.client
import json
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "onvif"))
from hostile import envelope, token  # noqa: E402  (the WS-Security helpers)

web_port, onvif_port, first_password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the appliance's self-signed certificate
seen = {}


def https(method, path, body=None, headers=None, source="127.0.0.1"):
    c = http.client.HTTPSConnection("127.0.0.1", web_port, context=ctx, timeout=30,
                                    source_address=(source, 0))
    try:
        c.request(method, path, body=None if body is None else json.dumps(body),
                  headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        return r.status, r.read(), r.getheader("Set-Cookie", "")
    finally:
        c.close()


def login(user, password, new_password):
    """Logs in, choosing a new password when asked; returns (cookie, csrf)."""
    status, body, cookie = https("POST", "/api/v1/session", {"user": user, "password": password})
    assert status == 200, (user, status, body)
    me, cookie = json.loads(body), cookie.split(";", 1)[0]
    if me["must_change_password"]:
        status, body, _ = https("POST", "/api/v1/session/password", {"current": password, "new": new_password},
                                {"Cookie": cookie, "X-CSRF-Token": me["csrf_token"]})
        assert status == 204, (status, body)
        return login(user, new_password, None)
    return cookie, me["csrf_token"]


def onvif_answer(body, user, password, source="127.0.0.1"):
    """(HTTP status, the fault's reason or "")."""
    c = http.client.HTTPConnection("127.0.0.1", onvif_port, timeout=30, source_address=(source, 0))
    try:
        c.request("POST", "/onvif/device_service", body=envelope(body, token(user, password)).encode(),
                  headers={"Content-Type": "application/soap+xml; charset=utf-8"})
        r = c.getresponse()
        text = r.read().decode(errors="replace")
        reason = text.split("<s:Text", 1)[1].split(">", 1)[1].split("<", 1)[0] if "<s:Text" in text else ""
        return r.status, reason
    finally:
        c.close()


def onvif(body, user, password, source="127.0.0.1"):
    return onvif_answer(body, user, password, source)[0]


# Ready: the web side answers (a deadline, not a sleep standing in for it).
deadline = time.time() + 60
while True:
    try:
        https("GET", "/api/v1/session")
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)

GET_USERS = "<tds:GetUsers/>"
seen["onvif_first_password"] = onvif_answer(GET_USERS, "admin", first_password)
admin_password = "the administrator's passphrase"
admin, admin_csrf = login("admin", first_password, admin_password)
seen["onvif_changed_password"] = onvif(GET_USERS, "admin", admin_password)
status, body, _ = https("PUT", "/api/v1/users/ops", {"role": "operator", "password": "first ops passphrase"},
                        {"Cookie": admin, "X-CSRF-Token": admin_csrf})
assert status in (200, 201, 204), (status, body)
ops, ops_csrf = login("ops", "first ops passphrase", "the ops passphrase")
status, body, _ = https("POST", "/api/v1/tokens", {"label": "script"}, {"Cookie": ops, "X-CSRF-Token": ops_csrf})
assert status in (200, 201), (status, body)
bearer = "Bearer " + json.loads(body)["token"]


def grants():
    return {"session": https("GET", "/api/v1/session", headers={"Cookie": ops})[0],
            "token": https("GET", "/api/v1/cameras", headers={"Authorization": bearer})[0]}


# ops signed in from 127.0.0.1 (above); a guesser at 127.0.0.7 tries ONVIF passwords for it.
seen["onvif_guesses"] = [onvif(GET_USERS, "ops", f"guess {i}", "127.0.0.7") for i in range(5)]
seen["web_login_elsewhere"] = https("POST", "/api/v1/session", {"user": "ops", "password": "the ops passphrase"},
                                    source="127.0.0.8")[0]
seen["onvif_elsewhere"] = onvif_answer(GET_USERS, "ops", "the ops passphrase", "127.0.0.9")
seen["web_login_where_it_signed_in"] = https("POST", "/api/v1/session",
                                             {"user": "ops", "password": "the ops passphrase"})[0]
seen["before"] = grants()
seen["delete_users"] = onvif("<tds:DeleteUsers><tds:Username>ops</tds:Username></tds:DeleteUsers>",
                             "admin", admin_password)
seen["after_delete"] = grants()
seen["create_users"] = onvif(
    "<tds:CreateUsers><tds:User><tt:Username>ops</tt:Username><tt:Password>a new ops password</tt:Password>"
    "<tt:UserLevel>Operator</tt:UserLevel></tds:User></tds:CreateUsers>", "admin", admin_password)
seen["after_recreate"] = grants()
print(json.dumps(seen))
