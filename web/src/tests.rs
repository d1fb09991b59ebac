//! The web routes through warp's test client, against a small in-memory appliance.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::{Account, Appliance, Caller, Failure, Probe, Role, Sessions, Upload};

/// The port as the web side sees it: users and tokens in memory, other answers canned, and
/// every call that reached it recorded.
struct SampleAppliance {
    users: Mutex<HashMap<String, (String, Role, bool)>>,
    audits: Mutex<Vec<String>>,
    events: tokio::sync::broadcast::Sender<Arc<Value>>,
    uploads: Mutex<Vec<ReceivedUpload>>,
    /// Where update uploads land; `None`: this appliance takes no updates.
    update_dir: Mutex<Option<std::path::PathBuf>>,
    /// Each submitted update bundle's bytes, as the appliance received them.
    updates: Mutex<Vec<Vec<u8>>>,
}

/// One enrolment upload as the appliance received it: (person, file) pairs and the files
/// rejected before, with why.
type ReceivedUpload = (Vec<(String, String)>, Vec<(String, String)>);

const SAMPLE_TOKEN: &str = "vigil_sample";

impl SampleAppliance {
    fn new() -> Arc<Self> {
        let users = [
            ("admin", ("first-password", Role::Admin, true)),
            ("olga", ("operator-pass", Role::Operator, false)),
            ("vic", ("viewer-pass1", Role::Viewer, false)),
        ]
        .into_iter()
        .map(|(n, (p, r, m))| (n.to_string(), (p.to_string(), r, m)))
        .collect();
        Arc::new(Self {
            users: Mutex::new(users),
            audits: Mutex::new(Vec::new()),
            events: tokio::sync::broadcast::channel(16).0,
            uploads: Mutex::new(Vec::new()),
            update_dir: Mutex::new(None),
            updates: Mutex::new(Vec::new()),
        })
    }
}

impl Appliance for SampleAppliance {
    fn verify_login(&self, user: &str, password: &str) -> Option<Account> {
        let users = self.users.lock();
        let (p, role, must) = users.get(user)?;
        (p == password).then(|| Account {
            name: user.into(),
            role: *role,
            must_change_password: *must,
        })
    }
    fn account(&self, user: &str) -> Option<Account> {
        let users = self.users.lock();
        let (_, role, must) = users.get(user)?;
        Some(Account {
            name: user.into(),
            role: *role,
            must_change_password: *must,
        })
    }
    fn change_password(&self, user: &str, password: &str) -> Result<(), String> {
        let mut users = self.users.lock();
        let entry = users.get_mut(user).ok_or("no user")?;
        entry.0 = password.into();
        entry.2 = false;
        Ok(())
    }
    fn token_account(&self, token: &str) -> Option<Account> {
        (token == SAMPLE_TOKEN).then(|| self.account("olga"))?
    }
    fn system(&self) -> Value {
        json!({"version": "test", "healthy": true})
    }
    fn metrics(&self) -> String {
        "vigil_cameras 1\n".into()
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Value>> {
        self.events.subscribe()
    }
    fn audit(&self, caller: &Caller, action: &str, target: &str, _detail: Value) {
        self.audits
            .lock()
            .push(format!("{} {action} {target}", caller.user));
    }
    fn cameras(&self) -> Value {
        json!([{"id": "door", "name": "Door", "state": "streaming"}])
    }
    fn put_camera(&self, id: &str, camera: Value) -> Result<Value, Failure> {
        if camera["url"]
            .as_str()
            .is_none_or(|u| !u.starts_with("rtsp://"))
        {
            return Err(Failure::Invalid("`camera[0].url`: must be rtsp://".into()));
        }
        Ok(json!({"id": id}))
    }
    fn delete_camera(&self, id: &str) -> Result<(), Failure> {
        (id == "door")
            .then_some(())
            .ok_or(Failure::NotFound("no camera".into()))
    }
    fn snapshot(&self, _id: &str) -> Result<Vec<u8>, Failure> {
        Ok(vec![0xff, 0xd8, 0xff, 0xd9])
    }
    fn watchlists(&self) -> Result<Value, Failure> {
        Ok(json!([]))
    }
    fn create_watchlist(&self, spec: Value) -> Result<Value, Failure> {
        Ok(json!({"id": "00000000000000a1", "name": spec["name"]}))
    }
    fn update_watchlist(&self, id: &str, _changes: Value) -> Result<Value, Failure> {
        Ok(json!({"id": id}))
    }
    fn delete_watchlist(&self, _id: &str) -> Result<Value, Failure> {
        Ok(json!({"persons": 0}))
    }
    fn watchlist(&self, id: &str) -> Result<Value, Failure> {
        Ok(json!({"id": id, "persons": 0, "enrolments": 0, "sightings": 0}))
    }
    fn persons(&self, _watchlist: &str, _query: &crate::PersonQuery) -> Result<Value, Failure> {
        Ok(json!({"total": 0, "persons": []}))
    }
    fn person(&self, id: &str) -> Result<Value, Failure> {
        Ok(json!({"id": id, "enrolments": []}))
    }
    fn person_face(&self, _person: &str, enrolment: &str) -> Result<Option<Vec<u8>>, Failure> {
        Ok((enrolment == "00000000000000a1").then(|| vec![0xff, 0xd8, 0xff, 0xd9]))
    }
    fn update_person(&self, id: &str, _changes: Value) -> Result<Value, Failure> {
        Ok(json!({"id": id}))
    }
    fn delete_person(&self, _id: &str) -> Result<Value, Failure> {
        Ok(json!({"sightings": 0}))
    }
    fn start_enrolment(
        &self,
        _caller: &Caller,
        _watchlist: &str,
        uploads: Vec<Upload>,
        rejected: Vec<(String, String)>,
    ) -> Result<Value, Failure> {
        let total = uploads.len();
        self.uploads.lock().push((
            uploads.into_iter().map(|u| (u.person, u.file)).collect(),
            rejected,
        ));
        Ok(json!({"job": "j1", "total": total}))
    }
    fn job(&self, id: &str) -> Option<Value> {
        (id == "j1").then(|| json!({"id": "j1", "state": "done"}))
    }
    fn sightings(&self, query: &crate::SightingQuery) -> Result<Value, Failure> {
        if query
            .outcome
            .as_deref()
            .is_some_and(|o| o != "matched" && o != "unregistered")
        {
            return Err(Failure::Invalid(
                "outcome is matched or unregistered".into(),
            ));
        }
        Ok(json!({"total": 1, "sightings": [{"id": "00000000000000a1", "camera": "door"}]}))
    }
    fn search_faces(&self, probe: Probe, _query: &crate::SightingQuery) -> Result<Value, Failure> {
        match probe {
            Probe::Photo(bytes) if bytes.is_empty() => Err(Failure::Invalid("empty photo".into())),
            _ => Ok(json!({"hits": []})),
        }
    }
    fn sighting_stats(&self, _query: &crate::SightingQuery) -> Result<Value, Failure> {
        Ok(json!({"per_camera": {}}))
    }
    fn thumbnail(&self, sighting: &str) -> Result<Option<Vec<u8>>, Failure> {
        Ok((sighting == "00000000000000a1").then(|| vec![0xff, 0xd8, 0xff, 0xd9]))
    }
    fn settings(&self) -> Value {
        json!({"privacy": {}})
    }
    fn settings_fields(&self) -> Value {
        json!([])
    }
    fn alerts(&self) -> Value {
        json!([])
    }
    fn acknowledge_alert(&self, caller: &Caller, id: &str) -> Result<Value, Failure> {
        Ok(json!({"alert": id, "acknowledged": {"by": caller.user}}))
    }
    fn put_settings(&self, changes: Value) -> Result<Value, Failure> {
        Ok(changes)
    }
    fn users(&self) -> Value {
        json!([])
    }
    fn put_user(&self, _name: &str, _spec: Value) -> Result<(), Failure> {
        Ok(())
    }
    fn delete_user(&self, _name: &str) -> Result<(), Failure> {
        Ok(())
    }
    fn create_token(&self, user: &str, label: &str) -> Result<Value, Failure> {
        Ok(json!({"id": "t1", "user": user, "label": label, "token": SAMPLE_TOKEN}))
    }
    fn tokens(&self, _user: Option<&str>) -> Value {
        json!([])
    }
    fn revoke_token(&self, _id: &str, _user: Option<&str>) -> Result<(), Failure> {
        Ok(())
    }
    fn install_certificate(&self, _certificate: &str, _key: &str) -> Result<Value, Failure> {
        Err(Failure::Invalid("not a PEM certificate".into()))
    }
    fn import_max_bytes(&self) -> u64 {
        4096
    }
    fn start_import(
        &self,
        _caller: &crate::Caller,
        upload: crate::ClipUpload,
    ) -> Result<Value, Failure> {
        let clip = upload
            .clip
            .read_all()
            .map_err(|e| Failure::Invalid(e.to_string()))?;
        Ok(
            json!({"id": "00000000000000a1", "file": upload.file, "camera": upload.camera,
            "start": upload.start, "bytes": clip.len()}),
        )
    }
    fn audit_records(&self, _query: &crate::AuditQuery) -> Result<Vec<Value>, Failure> {
        Ok(vec![
            json!({"seq": 1, "time": "2026-11-28T00:00:00Z", "user": "admin", "origin": "10.0.0.1",
            "action": "x", "target": "=cmd|' /C calc'!A0", "detail": {"a": "b,\"c\""}, "hash": "ab"}),
        ])
    }
    fn update_status(&self) -> Value {
        json!({"running_slot": "A", "running_version": "test", "last": null})
    }
    fn update_upload_dir(&self) -> Option<std::path::PathBuf> {
        self.update_dir.lock().clone()
    }
    fn submit_update(&self, _caller: &Caller, path: &std::path::Path) -> Result<Value, Failure> {
        let bytes = std::fs::read(path).map_err(|e| Failure::Unavailable(e.to_string()))?;
        if !bytes.starts_with(b"signed") {
            return Err(Failure::Invalid("the signature does not verify".into()));
        }
        self.updates.lock().push(bytes);
        Ok(json!({"version": "2.0"}))
    }
}

/// Every documented operation: method, path (ids filled in) and lowest role.
fn documented_with_roles() -> Vec<(String, String, String)> {
    let doc: Value = serde_json::from_str(crate::api::OPENAPI).unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let role = operation["x-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no x-role"));
            routes.push((
                method.to_uppercase(),
                path.replace("{id}", "00000000000000a1")
                    .replace("{enrolment}", "00000000000000a1"),
                role.to_string(),
            ));
        }
    }
    routes
}

fn documented() -> Vec<(String, String)> {
    documented_with_roles()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect()
}

struct Client {
    filter: warp::filters::BoxedFilter<(warp::reply::Response,)>,
}

impl Client {
    fn new(app: Arc<SampleAppliance>) -> Self {
        use warp::Filter as _;
        let filter = crate::routes(app, Arc::new(Sessions::default()))
            .map(|r| r)
            .boxed();
        Self { filter }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> warp::http::Response<bytes::Bytes> {
        let mut request = warp::test::request().method(method).path(path);
        // A credential is a session token, or `Bearer TOKEN` for an API token.
        match cookie.map(|c| (c, c.strip_prefix("Bearer "))) {
            Some((_, Some(token))) => {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            Some((c, None)) => request = request.header("cookie", format!("vigil_session={c}")),
            None => {}
        }
        if let Some(t) = csrf {
            request = request.header("x-csrf-token", t);
        }

        if let Some(b) = body {
            request = request.json(&b);
        }
        request.reply(&self.filter).await
    }

    /// Logs in: `(session token, csrf token, body)`.
    async fn login(&self, user: &str, password: &str) -> (String, String, Value) {
        let r = self
            .send(
                "POST",
                "/api/v1/session",
                None,
                None,
                Some(json!({"user": user, "password": password})),
            )
            .await;
        assert_eq!(r.status(), 200, "{:?}", r.body());
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        let token = cookie
            .trim_start_matches("vigil_session=")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        (
            token,
            body["csrf_token"].as_str().unwrap().to_string(),
            body,
        )
    }
}

#[tokio::test]
async fn every_documented_route_exists_and_refuses_without_a_session() {
    let client = Client::new(SampleAppliance::new());
    let routes = documented();
    assert_eq!(routes.len(), 47, "{routes:?}");
    for (method, path) in routes {
        let r = client.send(&method, &path, None, None, None).await;
        let public =
            path == "/api/v1/openapi.json" || (path == "/api/v1/session" && method == "POST");
        if public {
            assert!(
                r.status() != 404 && r.status() != 405,
                "{method} {path}: {}",
                r.status()
            );
        } else {
            assert_eq!(r.status(), 401, "{method} {path} without a session");
        }
        // Security headers on every answer, refusals included.
        for header in [
            "content-security-policy",
            "strict-transport-security",
            "x-frame-options",
            "x-content-type-options",
        ] {
            assert!(
                r.headers().contains_key(header),
                "{method} {path}: no {header}"
            );
        }
        // A made-up session is no session.
        if !public {
            let r = client
                .send(&method, &path, Some("0123"), Some("x"), None)
                .await;
            assert_eq!(r.status(), 401, "{method} {path} with a forged session");
        }
    }
    assert_eq!(
        client
            .send("GET", "/api/v1/nothing", None, None, None)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn the_first_password_must_be_changed_with_the_csrf_token() {
    let app = SampleAppliance::new();
    let client = Client::new(app.clone());
    let (token, csrf, me) = client.login("admin", "first-password").await;
    assert_eq!(me["must_change_password"], true);
    let r = client
        .send("GET", "/api/v1/cameras", Some(&token), None, None)
        .await;
    assert_eq!(r.status(), 403, "nothing but the password change before it");
    let change = json!({"current": "first-password", "new": "a much better one"});
    let r = client
        .send(
            "POST",
            "/api/v1/session/password",
            Some(&token),
            None,
            Some(change.clone()),
        )
        .await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let r = client
        .send(
            "POST",
            "/api/v1/session/password",
            Some(&token),
            Some("wrong"),
            Some(change.clone()),
        )
        .await;
    assert_eq!(r.status(), 403, "wrong CSRF token");
    let weak = json!({"current": "first-password", "new": "short"});
    let r = client
        .send(
            "POST",
            "/api/v1/session/password",
            Some(&token),
            Some(&csrf),
            Some(weak),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = client
        .send(
            "POST",
            "/api/v1/session/password",
            Some(&token),
            Some(&csrf),
            Some(change),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = client
        .send("GET", "/api/v1/cameras", Some(&token), None, None)
        .await;
    assert_eq!(r.status(), 200);
    let cameras: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(cameras[0]["id"], "door");
    // Logging out needs the token too, and ends the session.
    assert_eq!(
        client
            .send("DELETE", "/api/v1/session", Some(&token), None, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        client
            .send("DELETE", "/api/v1/session", Some(&token), Some(&csrf), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        client
            .send("GET", "/api/v1/session", Some(&token), None, None)
            .await
            .status(),
        401
    );
    let audits = app.audits.lock().clone();
    assert_eq!(
        audits,
        [
            "admin session.login admin",
            "admin user.password_change admin",
            "admin session.logout admin"
        ]
    );
}

#[tokio::test]
async fn roles_limit_routes_and_failed_logins_lock_out() {
    let client = Client::new(SampleAppliance::new());
    let (viewer, _, _) = client.login("vic", "viewer-pass1").await;
    assert_eq!(
        client
            .send("GET", "/api/v1/system", Some(&viewer), None, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        client
            .send("GET", "/metrics", Some(&viewer), None, None)
            .await
            .status(),
        403
    );
    let (operator, _, _) = client.login("olga", "operator-pass").await;
    let r = client
        .send("GET", "/metrics", Some(&operator), None, None)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"vigil_cameras 1\n");

    for _ in 0..5 {
        let r = client
            .send(
                "POST",
                "/api/v1/session",
                None,
                None,
                Some(json!({"user": "olga", "password": "guess"})),
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = client
        .send(
            "POST",
            "/api/v1/session",
            None,
            None,
            Some(json!({"user": "olga", "password": "operator-pass"})),
        )
        .await;
    assert_eq!(r.status(), 429, "locked out even with the right password");

    let huge = json!({"user": "x", "password": "p".repeat(100_000)});
    let r = client
        .send("POST", "/api/v1/session", None, None, Some(huge))
        .await;
    assert_eq!(r.status(), 413);
    let r = warp::test::request()
        .method("POST")
        .path("/api/v1/session")
        .header("content-type", "application/json")
        .body("{not json")
        .reply(&client.filter)
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_audit_exports_as_csv_safe_for_spreadsheets() {
    let client = Client::new(SampleAppliance::new());
    let (admin, csrf, _) = client.login("admin", "first-password").await;
    let change = json!({"current": "first-password", "new": "a much better one"});
    let r = client
        .send(
            "POST",
            "/api/v1/session/password",
            Some(&admin),
            Some(&csrf),
            Some(change),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = client
        .send("GET", "/api/v1/audit?format=csv", Some(&admin), None, None)
        .await;
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(r.body().to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "seq,time,user,origin,action,target,detail,hash");
    assert!(lines[1].contains("\"'=cmd|' /C calc'!A0\""), "{}", lines[1]);
    assert!(
        lines[1].contains("\"{\"\"a\"\":\"\"b,\\\"\"c\\\"\"\"\"}\""),
        "{}",
        lines[1]
    );
    let r = client
        .send("GET", "/api/v1/audit", Some(&admin), None, None)
        .await;
    let records: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(records[0]["seq"], 1);
}

#[tokio::test]
async fn the_ui_is_served_with_a_strict_policy() {
    let client = Client::new(SampleAppliance::new());
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let r = client.send("GET", path, None, None, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
    }
}

/// Logs in and replaces the first password where needed: a session ready for everything.
async fn ready_session(client: &Client, user: &str, password: &str) -> (String, String) {
    let (token, csrf, me) = client.login(user, password).await;
    if me["must_change_password"] == true {
        let change = json!({"current": password, "new": "a much better one"});
        let r = client
            .send(
                "POST",
                "/api/v1/session/password",
                Some(&token),
                Some(&csrf),
                Some(change),
            )
            .await;
        assert_eq!(r.status(), 204);
    }
    (token, csrf)
}

fn rank(role: &str) -> u8 {
    match role {
        "public" => 0,
        "viewer" => 1,
        "operator" => 2,
        "admin" => 3,
        other => panic!("unknown role {other}"),
    }
}

#[tokio::test]
async fn every_route_refuses_lower_roles_and_session_changes_without_csrf() {
    let app = SampleAppliance::new();
    let client = Client::new(app.clone());
    let sessions = [
        (
            "viewer",
            ready_session(&client, "vic", "viewer-pass1").await,
        ),
        (
            "operator",
            ready_session(&client, "olga", "operator-pass").await,
        ),
        (
            "admin",
            ready_session(&client, "admin", "first-password").await,
        ),
    ];
    let mut checked = 0;
    for (method, path, role) in documented_with_roles() {
        if role == "public" || path == "/api/v1/session" {
            continue;
        }
        // The event stream never ends; its refusals are checked below.
        let streams = path == "/api/v1/events";
        for (user_role, (token, csrf)) in &sessions {
            let allowed = rank(user_role) >= rank(&role);
            let changes = method != "GET";
            if streams && allowed {
                continue;
            }
            let before = app.audits.lock().len();
            let r = client
                .send(&method, &path, Some(token), Some(csrf), None)
                .await;
            if !allowed {
                assert_eq!(r.status(), 403, "{method} {path} as {user_role}");
                assert_eq!(
                    app.audits.lock().len(),
                    before,
                    "{method} {path}: refused yet audited"
                );
            } else {
                assert!(
                    r.status() != 403 && r.status() != 401,
                    "{method} {path} as {user_role}: {}",
                    r.status()
                );
                checked += 1;
            }
            if allowed && changes {
                let r = client.send(&method, &path, Some(token), None, None).await;
                assert_eq!(r.status(), 403, "{method} {path} without the CSRF token");
            }
        }
    }
    assert!(checked > 50, "{checked}");
}

#[tokio::test]
async fn api_tokens_act_as_their_user_without_csrf() {
    let app = SampleAppliance::new();
    let client = Client::new(app.clone());
    let bearer = format!("Bearer {SAMPLE_TOKEN}");
    let r = client
        .send("GET", "/api/v1/sightings", Some(&bearer), None, None)
        .await;
    assert_eq!(r.status(), 200, "the token's user is an operator");
    let r = client
        .send("GET", "/api/v1/users", Some(&bearer), None, None)
        .await;
    assert_eq!(r.status(), 403, "and no administrator");
    let body = json!({"url": "rtsp://127.0.0.1/x"});
    let r = client
        .send(
            "PUT",
            "/api/v1/cameras/yard",
            Some(&bearer),
            None,
            Some(body),
        )
        .await;
    assert_eq!(
        r.status(),
        200,
        "no CSRF token needed: a token is no ambient credential"
    );
    assert!(app
        .audits
        .lock()
        .contains(&"olga camera.put yard".to_string()));
    let r = client
        .send(
            "GET",
            "/api/v1/cameras",
            Some("Bearer vigil_forged"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "vigil-test-boundary";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn uploads_name_their_persons_and_oversized_ones_are_refused() {
    let app = SampleAppliance::new();
    let client = Client::new(app.clone());
    let (token, csrf) = ready_session(&client, "olga", "operator-pass").await;
    let (content_type, body) = multipart(&[
        ("files", Some("batch/Ada/1.jpg"), b"jpeg-bytes"),
        ("files", Some("batch/Bob/1.jpg"), b"jpeg-bytes"),
        ("files", Some("notes.txt"), b"not in a folder"),
    ]);
    let r = warp::test::request()
        .method("POST")
        .path("/api/v1/watchlists/00000000000000a1/enrolments")
        .header("cookie", format!("vigil_session={token}"))
        .header("x-csrf-token", &csrf)
        .header("content-type", content_type)
        .body(body)
        .reply(&client.filter)
        .await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    let (uploads, rejected) = app.uploads.lock()[0].clone();
    assert_eq!(
        uploads,
        [
            ("Ada".to_string(), "batch/Ada/1.jpg".to_string()),
            ("Bob".to_string(), "batch/Bob/1.jpg".to_string())
        ]
    );
    assert_eq!(rejected[0].0, "notes.txt");
    assert!(app
        .audits
        .lock()
        .contains(&"olga enrolment.start 00000000000000a1".to_string()));

    // A probe photo over 20 MiB is refused before it is read.
    let r = warp::test::request()
        .method("POST")
        .path("/api/v1/sightings/search")
        .header("cookie", format!("vigil_session={token}"))
        .header("x-csrf-token", &csrf)
        .body(vec![0u8; 21 * 1024 * 1024])
        .reply(&client.filter)
        .await;
    assert_eq!(r.status(), 413);
    // So is an enrolment announced over 2 GiB.
    let r = warp::test::request()
        .method("POST")
        .path("/api/v1/watchlists/00000000000000a1/enrolments")
        .header("cookie", format!("vigil_session={token}"))
        .header("x-csrf-token", &csrf)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--")
        // (after the body, which sets its own length)
        .header("content-length", (3u64 << 30).to_string())
        .reply(&client.filter)
        .await;
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn clips_for_import_are_for_administrators_and_bounded() {
    let app = SampleAppliance::new();
    let client = Client::new(app.clone());
    let post =
        |token: String, csrf: String, parts: Vec<(&'static str, Option<&'static str>, Vec<u8>)>| {
            let filter = client.filter.clone();
            async move {
                let refs: Vec<(&str, Option<&str>, &[u8])> = parts
                    .iter()
                    .map(|(n, f, b)| (*n, *f, b.as_slice()))
                    .collect();
                let (content_type, body) = multipart(&refs);
                warp::test::request()
                    .method("POST")
                    .path("/api/v1/imports")
                    .header("cookie", format!("vigil_session={token}"))
                    .header("x-csrf-token", csrf)
                    .header("content-type", content_type)
                    .body(body)
                    .reply(&filter)
                    .await
            }
        };
    let clip = |n: usize| -> Vec<(&'static str, Option<&'static str>, Vec<u8>)> {
        vec![
            ("camera", None, b"gate".to_vec()),
            ("start", None, b"2026-11-28T08:00:00Z".to_vec()),
            ("clip", Some("door.mp4"), vec![7u8; n]),
        ]
    };
    let (admin, admin_csrf) = ready_session(&client, "admin", "first-password").await;
    let r = post(admin.clone(), admin_csrf.clone(), clip(1000)).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    let job: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        (&job["camera"], &job["start"], &job["file"], &job["bytes"]),
        (
            &json!("gate"),
            &json!("2026-11-28T08:00:00Z"),
            &json!("door.mp4"),
            &json!(1000)
        )
    );
    assert!(app
        .audits
        .lock()
        .contains(&"admin video.import_start 00000000000000a1".to_string()));
    // Over the appliance's limit: refused before it is kept.
    let r = post(admin.clone(), admin_csrf.clone(), clip(5000)).await;
    assert_eq!(r.status(), 413, "{:?}", r.body());
    // No camera: refused.
    let mut parts = clip(10);
    parts.remove(0);
    let r = post(admin, admin_csrf, parts).await;
    assert_eq!(r.status(), 400, "{:?}", r.body());
    // Operators may not.
    let (olga, olga_csrf) = ready_session(&client, "olga", "operator-pass").await;
    let r = post(olga, olga_csrf, clip(10)).await;
    assert_eq!(r.status(), 403, "{:?}", r.body());
}

#[tokio::test]
async fn update_bundles_are_streamed_to_the_appliance_by_administrators_only() {
    let app = SampleAppliance::new();
    let client = Client::new(app.clone());
    let upload = |token: String, csrf: String, body: Vec<u8>| {
        let filter = client.filter.clone();
        async move {
            warp::test::request()
                .method("POST")
                .path("/api/v1/system/update")
                .header("cookie", format!("vigil_session={token}"))
                .header("x-csrf-token", csrf)
                .header("content-type", "application/octet-stream")
                .body(body)
                .reply(&filter)
                .await
        }
    };
    let (admin, admin_csrf) = ready_session(&client, "admin", "first-password").await;
    // Not an appliance image: refused, and said so.
    let r = upload(admin.clone(), admin_csrf.clone(), b"signed".to_vec()).await;
    assert_eq!(r.status(), 409, "{:?}", r.body());

    let dir = std::env::temp_dir().join(format!("vigil-web-update-{}", std::process::id()));
    *app.update_dir.lock() = Some(dir.clone());
    // Larger than one write batch, so the body arrives in pieces.
    let mut bundle = b"signed".to_vec();
    bundle.extend((0..3_000_000u32).map(|i| (i % 251) as u8));
    let r = upload(admin.clone(), admin_csrf.clone(), bundle.clone()).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    let manifest: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(manifest["version"], "2.0");
    assert!(
        app.updates.lock().last() == Some(&bundle),
        "the bundle arrived whole"
    );

    let r = upload(admin.clone(), admin_csrf.clone(), b"forged".to_vec()).await;
    assert_eq!(r.status(), 400, "{:?}", r.body());
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert!(body.to_string().contains("signature"), "{body}");
    // Accepted or refused, no upload stays behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        app.audits
            .lock()
            .iter()
            .filter(|a| a.as_str() == "admin update.upload ")
            .count(),
        3
    );

    let (olga, olga_csrf) = ready_session(&client, "olga", "operator-pass").await;
    let r = upload(olga, olga_csrf, b"signed".to_vec()).await;
    assert_eq!(r.status(), 403, "{:?}", r.body());
    assert_eq!(app.updates.lock().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
