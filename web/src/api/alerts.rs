//! `/api/v1/alerts`: the latest alerts as the live page lists them when it opens, and their
//! acknowledgement ("seen and dealt with", by whom: audited). Viewers read; operators
//! acknowledge.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::{blocking, caller, changing, json_reply, with};
use super::{App, Ctx, Routes};
use crate::port::Role;
use crate::sessions::Sessions;

pub(super) fn routes(app: App, sessions: Arc<Sessions>) -> Routes {
    let v1 = warp::path("api").and(warp::path("v1"));

    let list = v1
        .and(warp::path!("alerts"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(with(app.clone()))
        .and_then(list_alerts);

    let acknowledge = v1
        .and(warp::path!("alerts" / String / "acknowledgement"))
        .and(warp::post())
        .and(changing(app.clone(), sessions, Role::Operator, false))
        .and(with(app))
        .and_then(acknowledge_alert);

    list.or(acknowledge)
        .unify()
        .map(|r: warp::reply::Response| r.into_response())
        .boxed()
}

async fn list_alerts(ctx: Ctx, app: App) -> Result<warp::reply::Response, Rejection> {
    // Identities and faces: read like the live stream, audited like it.
    app.audit(&ctx.caller, "alerts.read", "", serde_json::Value::Null);
    Ok(json_reply(StatusCode::OK, &app.alerts()))
}

async fn acknowledge_alert(
    id: String,
    ctx: Ctx,
    app: App,
) -> Result<warp::reply::Response, Rejection> {
    let (worker, caller, alert_id) = (app.clone(), ctx.caller.clone(), id.clone());
    let alert = blocking(move || worker.acknowledge_alert(&caller, &alert_id)).await?;
    app.audit(
        &ctx.caller,
        "alert.acknowledge",
        &id,
        json!({ "type": alert["type"], "camera": alert["camera"], "person": alert["person"] }),
    );
    Ok(json_reply(StatusCode::OK, &alert))
}
