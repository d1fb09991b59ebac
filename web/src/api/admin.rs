//! Administration: settings, users, API tokens, the HTTPS certificate (admin) and the audit
//! log (admin; JSON or CSV). Every user may make and revoke API tokens of their own.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::{blocking, bytes_reply, caller, changing, json_body, json_reply, no_content, with};
use super::{refuse, App, Ctx, Routes};
use crate::port::{AuditQuery, Role};
use crate::sessions::Sessions;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Certificate {
    certificate: String,
    key: String,
}

pub(super) fn routes(app: App, sessions: Arc<Sessions>) -> Routes {
    let v1 = warp::path("api").and(warp::path("v1"));
    let admin = caller(app.clone(), sessions.clone(), Role::Admin, false);
    let admin_change = changing(app.clone(), sessions.clone(), Role::Admin, false);

    let settings = v1
        .and(warp::path!("settings"))
        .and(warp::get())
        .and(admin.clone())
        .and(with(app.clone()))
        .map(|_ctx: Ctx, app: App| json_reply(StatusCode::OK, &app.settings()));

    let settings_fields = v1
        .and(warp::path!("settings" / "fields"))
        .and(warp::get())
        .and(admin.clone())
        .and(with(app.clone()))
        .map(|_ctx: Ctx, app: App| json_reply(StatusCode::OK, &app.settings_fields()));

    let put_settings = v1
        .and(warp::path!("settings"))
        .and(warp::put())
        .and(admin_change.clone())
        .and(json_body::<serde_json::Value>())
        .and(with(app.clone()))
        .and_then(|ctx: Ctx, body: serde_json::Value, app: App| async move {
            let (worker, changes) = (app.clone(), body.clone());
            let now = blocking(move || worker.put_settings(changes)).await?;
            app.audit(&ctx.caller, "settings.change", "", body);
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &now))
        });

    let users = v1
        .and(warp::path!("users"))
        .and(warp::get())
        .and(admin.clone())
        .and(with(app.clone()))
        .map(|_ctx: Ctx, app: App| json_reply(StatusCode::OK, &app.users()));

    let put_user = v1
        .and(warp::path!("users" / String))
        .and(warp::put())
        .and(admin_change.clone())
        .and(json_body::<serde_json::Value>())
        .and(with(app.clone()))
        .and_then(
            |name: String, ctx: Ctx, body: serde_json::Value, app: App| async move {
                let mut audited = body.clone();
                if let Some(password) = audited.get_mut("password") {
                    *password = json!("***");
                }
                let (worker, user) = (app.clone(), name.clone());
                blocking(move || worker.put_user(&user, body)).await?;
                app.audit(&ctx.caller, "user.put", &name, audited);
                Ok::<_, Rejection>(no_content())
            },
        );

    let delete_user = v1
        .and(warp::path!("users" / String))
        .and(warp::delete())
        .and(admin_change.clone())
        .and(with(app.clone()))
        .and(with(sessions.clone()))
        .and_then(
            |name: String, ctx: Ctx, app: App, sessions: Arc<Sessions>| async move {
                if name == ctx.account.name {
                    return Err(refuse(
                        StatusCode::CONFLICT,
                        "you cannot delete your own account",
                    ));
                }
                let (worker, user) = (app.clone(), name.clone());
                blocking(move || worker.delete_user(&user)).await?;
                sessions.end_others(&name, "");
                app.audit(&ctx.caller, "user.delete", &name, serde_json::Value::Null);
                Ok::<_, Rejection>(no_content())
            },
        );

    let tokens = v1
        .and(warp::path!("tokens"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(with(app.clone()))
        .map(|ctx: Ctx, app: App| json_reply(StatusCode::OK, &app.tokens(own_unless_admin(&ctx))));

    let create_token = v1
        .and(warp::path!("tokens"))
        .and(warp::post())
        .and(changing(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(json_body::<NewToken>())
        .and(with(app.clone()))
        .and_then(|ctx: Ctx, body: NewToken, app: App| async move {
            let (worker, user, label) = (app.clone(), ctx.account.name.clone(), body.label);
            let made = blocking({
                let label = label.clone();
                move || worker.create_token(&user, &label)
            })
            .await?;
            let id = made["id"].as_str().unwrap_or_default().to_string();
            app.audit(&ctx.caller, "token.create", &id, json!({ "label": label }));
            Ok::<_, Rejection>(json_reply(StatusCode::CREATED, &made))
        });

    let revoke_token = v1
        .and(warp::path!("tokens" / String))
        .and(warp::delete())
        .and(changing(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(with(app.clone()))
        .and_then(|id: String, ctx: Ctx, app: App| async move {
            let (worker, token, user) = (
                app.clone(),
                id.clone(),
                own_unless_admin(&ctx).map(str::to_string),
            );
            blocking(move || worker.revoke_token(&token, user.as_deref())).await?;
            app.audit(&ctx.caller, "token.revoke", &id, serde_json::Value::Null);
            Ok::<_, Rejection>(no_content())
        });

    let certificate = v1
        .and(warp::path!("system" / "certificate"))
        .and(warp::put())
        .and(admin_change)
        .and(json_body::<Certificate>())
        .and(with(app.clone()))
        .and_then(|ctx: Ctx, body: Certificate, app: App| async move {
            let worker = app.clone();
            let installed =
                blocking(move || worker.install_certificate(&body.certificate, &body.key)).await?;
            app.audit(&ctx.caller, "certificate.install", "", installed.clone());
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &installed))
        });

    let audit = v1
        .and(warp::path!("audit"))
        .and(warp::get())
        .and(admin)
        .and(warp::query::<AuditQuery>())
        .and(with(app))
        .and_then(|ctx: Ctx, query: AuditQuery, app: App| async move {
            let (worker, q) = (app.clone(), query.clone());
            let records = blocking(move || worker.audit_records(&q)).await?;
            app.audit(
                &ctx.caller,
                "audit.read",
                "",
                json!({ "records": records.len() }),
            );
            if query.format.as_deref() == Some("csv") {
                return Ok::<_, Rejection>(bytes_reply(
                    audit_csv(&records).into_bytes(),
                    "text/csv; charset=utf-8",
                ));
            }
            Ok(json_reply(
                StatusCode::OK,
                &serde_json::Value::Array(records),
            ))
        });

    settings
        .or(settings_fields)
        .unify()
        .or(put_settings)
        .unify()
        .or(users)
        .unify()
        .or(put_user)
        .unify()
        .or(delete_user)
        .unify()
        .or(tokens)
        .unify()
        .or(create_token)
        .unify()
        .or(revoke_token)
        .unify()
        .or(certificate)
        .unify()
        .or(audit)
        .unify()
        .map(|r: warp::reply::Response| r.into_response())
        .boxed()
}

/// Administrators see and revoke every token; others only their own.
fn own_unless_admin(ctx: &Ctx) -> Option<&str> {
    (ctx.account.role < Role::Admin).then_some(ctx.account.name.as_str())
}

/// Audit records as CSV: one row each, the detail as JSON.
fn audit_csv(records: &[serde_json::Value]) -> String {
    const COLUMNS: [&str; 8] = [
        "seq", "time", "user", "origin", "action", "target", "detail", "hash",
    ];
    let field = |v: &serde_json::Value| -> String {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        // Quoted, quotes doubled; a leading formula character is defused for spreadsheets.
        let text = if text.starts_with(['=', '+', '-', '@']) {
            format!("'{text}")
        } else {
            text
        };
        format!("\"{}\"", text.replace('"', "\"\""))
    };
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for r in records {
        let row: Vec<String> = COLUMNS.iter().map(|c| field(&r[*c])).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}
