//! `/api/v1/cameras`: the cameras with their state (viewer), added, changed and removed
//! while the daemon runs (operator), and their latest analysed frame.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::{blocking, bytes_reply, caller, changing, json_body, json_reply, no_content, with};
use super::{App, Ctx, Routes};
use crate::port::Role;
use crate::sessions::Sessions;

pub(super) fn routes(app: App, sessions: Arc<Sessions>) -> Routes {
    let v1 = warp::path("api").and(warp::path("v1"));

    let list = v1
        .and(warp::path!("cameras"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(with(app.clone()))
        .map(|_ctx: Ctx, app: App| json_reply(StatusCode::OK, &app.cameras()));

    let put = v1
        .and(warp::path!("cameras" / String))
        .and(warp::put())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(json_body::<serde_json::Value>())
        .and(with(app.clone()))
        .and_then(
            |id: String, ctx: Ctx, body: serde_json::Value, app: App| async move {
                let (worker, camera_id) = (app.clone(), id.clone());
                let audited = redact_password(&body);
                let camera = blocking(move || worker.put_camera(&camera_id, body)).await?;
                app.audit(&ctx.caller, "camera.put", &id, audited);
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &camera))
            },
        );

    let delete = v1
        .and(warp::path!("cameras" / String))
        .and(warp::delete())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(with(app.clone()))
        .and_then(|id: String, ctx: Ctx, app: App| async move {
            let (worker, camera_id) = (app.clone(), id.clone());
            blocking(move || worker.delete_camera(&camera_id)).await?;
            app.audit(&ctx.caller, "camera.delete", &id, serde_json::Value::Null);
            Ok::<_, Rejection>(no_content())
        });

    let snapshot = v1
        .and(warp::path!("cameras" / String / "snapshot"))
        .and(warp::get())
        .and(caller(app.clone(), sessions, Role::Viewer, false))
        .and(with(app))
        .and_then(|id: String, _ctx: Ctx, app: App| async move {
            let jpeg = blocking(move || app.snapshot(&id)).await?;
            Ok::<_, Rejection>(bytes_reply(jpeg, "image/jpeg"))
        });

    list.or(put)
        .unify()
        .or(delete)
        .unify()
        .or(snapshot)
        .unify()
        .map(|r: warp::reply::Response| r.into_response())
        .boxed()
}

/// The camera as audited: a password is recorded as given, never its value.
fn redact_password(body: &serde_json::Value) -> serde_json::Value {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        if object.contains_key("password") {
            object.insert("password".into(), json!("***"));
        }
        if let Some(url) = object.get("url").and_then(|u| u.as_str()) {
            let shown = match url.split_once("://") {
                Some((scheme, rest)) => match rest.split('/').next().and_then(|a| a.rfind('@')) {
                    Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                    None => url.to_string(),
                },
                None => url.to_string(),
            };
            object.insert("url".into(), json!(shown));
        }
    }
    body
}
