"""The watchlist pages' API over HTTPS (Python stdlib only): persons paged and found by name,
their enrolled faces, a person's and a watchlist's details with what deleting them removes,
watchlist kinds, settings described and refused by field, alerts. Prints one JSON object of
what it saw, for the Rust test (appliance/tests/web.rs) to judge."""
import json
import sys
import urllib.request

from https_client import Client

https_port, first_password = sys.argv[1], sys.argv[2]
client = Client(https_port)
call, json_of = client.call, client.json
client.first_login(first_password)
seen = {}

_, lists = json_of("GET", "/api/v1/watchlists")
staff = next(l for l in lists if l["name"] == "staff")
seen["kind_default"] = staff["kind"]
seen["kind_change"], changed = json_of("PATCH", f"/api/v1/watchlists/{staff['id']}", {"kind": "deny"})
seen["kind_now"] = changed["kind"]
seen["kind_bad"] = call("PATCH", f"/api/v1/watchlists/{staff['id']}", {"kind": "vip"})[0]

persons = f"/api/v1/watchlists/{staff['id']}/persons"
_, first = json_of("GET", persons + "?limit=2")
_, last = json_of("GET", persons + "?limit=2&offset=4")
seen["page_totals"] = [first["total"], last["total"]]
seen["first_page"] = [p["name"] for p in first["persons"]]
seen["last_page"] = [p["name"] for p in last["persons"]]
_, every = json_of("GET", persons + "?limit=500")
seen["all_names"] = [p["name"] for p in every["persons"]]
wanted = every["persons"][3]
_, found = json_of("GET", persons + "?q=" + urllib.request.quote(wanted["name"][2:7].lower()))
seen["found"] = [p["name"] for p in found["persons"]]
seen["wanted"] = wanted["name"]

status, jpeg, content_type = call("GET", wanted["face"])
seen["face"] = [status, content_type, jpeg[:2].hex()]
seen["face_of_stranger"] = call("GET", wanted["face"].replace(wanted["id"], "00000000-0000-4000-8000-000000000000"))[0]

_, detail = json_of("GET", f"/api/v1/persons/{wanted['id']}")
seen["person"] = {
    "photos": wanted["photos"],
    "enrolments": len(detail["enrolments"]),
    "faces": sum(1 for e in detail["enrolments"] if e["face"]),
    "qualities": [e["quality"] for e in detail["enrolments"]],
    "sightings": detail["sightings"],
    "watchlist": detail["watchlist"],
}
_, list_detail = json_of("GET", f"/api/v1/watchlists/{staff['id']}")
seen["watchlist_detail"] = {k: list_detail[k] for k in ("persons", "enrolments", "sightings")}
seen["photos_listed"] = sum(p["photos"] for p in every["persons"])

_, fields = json_of("GET", "/api/v1/settings/fields")
seen["min_face_field"] = next(f for f in fields if f["field"] == "analysis.min_face")
status, refusal = json_of("PUT", "/api/v1/settings", {"analysis": {"min_face": 5}})
seen["refused_range"] = [status, refusal]
status, refusal = json_of("PUT", "/api/v1/settings", {"analysis": {"best_shots": "many"}})
seen["refused_type"] = [status, refusal]

seen["alerts"] = json_of("GET", "/api/v1/alerts")
seen["ack_unknown"] = call("POST", "/api/v1/alerts/nothing/acknowledgement")[0]

seen["erase"], removed = json_of("DELETE", f"/api/v1/persons/{wanted['id']}")
seen["removed"] = removed
seen["face_after_erase"] = call("GET", wanted["face"])[0]
_, audit = json_of("GET", "/api/v1/audit")
seen["face_reads_audited"] = [r["target"] for r in audit if r["action"] == "person.read"]
print(json.dumps(seen))
