//! The web routes through warp's test client, against a small in-memory appliance.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::{Account, Appliance, Caller, Role, Sessions};

struct SampleAppliance {
    users: Mutex<HashMap<String, (String, Role, bool)>>,
    audits: Mutex<Vec<String>>,
    events: tokio::sync::broadcast::Sender<Arc<Value>>,
}

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
    fn system(&self) -> Value {
        json!({"version": "test", "healthy": true})
    }
    fn cameras(&self) -> Value {
        json!([{"id": "door", "name": "Door", "state": "streaming"}])
    }
    fn metrics(&self) -> String {
        "vigil_cameras 1\n".into()
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Value>> {
        self.events.subscribe()
    }
    fn sightings(&self, query: &crate::SightingQuery) -> Result<Value, String> {
        if query
            .outcome
            .as_deref()
            .is_some_and(|o| o != "matched" && o != "unregistered")
        {
            return Err("outcome is matched or unregistered".into());
        }
        Ok(json!({"total": 1, "sightings": [{"id": "00000000000000a1", "camera": "door"}]}))
    }
    fn thumbnail(&self, sighting: &str) -> Result<Option<Vec<u8>>, String> {
        Ok((sighting == "00000000000000a1").then(|| vec![0xff, 0xd8, 0xff, 0xd9]))
    }
    fn audit_records(&self, _query: &crate::AuditQuery) -> Result<Vec<Value>, String> {
        Ok(vec![
            json!({"seq": 1, "time": "2026-11-28T00:00:00Z", "user": "admin", "origin": "10.0.0.1",
            "action": "x", "target": "=cmd|' /C calc'!A0", "detail": {"a": "b,\"c\""}, "hash": "ab"}),
        ])
    }
    fn audit(&self, caller: &Caller, action: &str, target: &str, _detail: Value) {
        self.audits
            .lock()
            .push(format!("{} {action} {target}", caller.user));
    }
}

fn documented() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(crate::api::OPENAPI).unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((
                method.to_uppercase(),
                path.replace("{id}", "00000000000000a1"),
            ));
        }
    }
    routes
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
        if let Some(c) = cookie {
            request = request.header("cookie", format!("vigil_session={c}"));
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
    assert_eq!(routes.len(), 12, "{routes:?}");
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
