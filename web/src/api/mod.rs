//! The REST API under `/api/v1` (documented in `openapi.json`) and `/metrics`.
//!
//! Every route but the login and the OpenAPI file needs a session or an API token
//! (`Authorization: Bearer`); each states the lowest role it allows. A session whose password
//! must be changed can only read itself, change the password, or log out. Requests of a
//! session that change anything must carry its CSRF token in `X-CSRF-Token` (a token is no
//! ambient credential: it needs none). Every change is audited.

mod admin;
mod alerts;
mod cameras;
mod imports;
mod sightings;
mod update;
mod watchlists;

#[doc(hidden)]
pub use watchlists::upload_answer;

use std::convert::Infallible;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::port::{Account, Appliance, Caller, Failure, Role};
use crate::sessions::{LoginRefused, Session, Sessions};
use crate::{Peer, MAX_JSON_BODY};

const COOKIE: &str = "vigil_session";
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// A refusal with its status and a message for the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// The request field at fault, for forms to show the message beside it.
    field: Option<String>,
}

impl warp::reject::Reject for ApiError {}

fn refuse(status: StatusCode, message: &str) -> Rejection {
    warp::reject::custom(ApiError {
        status,
        message: message.into(),
        field: None,
    })
}

impl From<Failure> for Rejection {
    fn from(failure: Failure) -> Self {
        let status = match &failure {
            Failure::Invalid(_) | Failure::InvalidField { .. } => StatusCode::BAD_REQUEST,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::Conflict(_) => StatusCode::CONFLICT,
            Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let field = match &failure {
            Failure::InvalidField { field, .. } => Some(field.clone()),
            _ => None,
        };
        warp::reject::custom(ApiError {
            status,
            message: failure.to_string(),
            field,
        })
    }
}

/// The caller of an authenticated request: a browser session, or an API token (`session`
/// and `token` empty).
#[derive(Clone)]
struct Ctx {
    token: String,
    session: Option<Session>,
    account: Account,
    caller: Caller,
}

type App = Arc<dyn Appliance>;

fn with<T: Clone + Send>(value: T) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

fn peer() -> impl Filter<Extract = (std::net::IpAddr,), Error = Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .map(|p: Option<Peer>| p.map_or(std::net::IpAddr::from([127, 0, 0, 1]), |p| p.0.ip()))
}

/// A logged-in caller of at least `role`; with `allow_pending`, also one who still has to
/// change the first password.
fn caller(
    app: App,
    sessions: Arc<Sessions>,
    role: Role,
    allow_pending: bool,
) -> impl Filter<Extract = (Ctx,), Error = Rejection> + Clone {
    warp::cookie::optional::<String>(COOKIE)
        .and(warp::header::optional::<String>("authorization"))
        .and(peer())
        .and(with(app))
        .and(with(sessions))
        .and_then(
            move |cookie: Option<String>,
                  bearer: Option<String>,
                  peer,
                  app: App,
                  sessions: Arc<Sessions>| async move {
                let (token, session, account) = match (cookie, bearer) {
                    (Some(token), _) => {
                        let session = sessions.get(&token).ok_or_else(|| {
                            refuse(StatusCode::UNAUTHORIZED, "session expired; log in again")
                        })?;
                        let account = app.account(&session.user).ok_or_else(|| {
                            refuse(StatusCode::UNAUTHORIZED, "no such user any more")
                        })?;
                        (token, Some(session), account)
                    }
                    (None, Some(header)) => {
                        let secret = header
                            .strip_prefix("Bearer ")
                            .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "use Bearer TOKEN"))?;
                        let account = app.token_account(secret.trim()).ok_or_else(|| {
                            refuse(StatusCode::UNAUTHORIZED, "unknown or revoked token")
                        })?;
                        (String::new(), None, account)
                    }
                    (None, None) => return Err(refuse(StatusCode::UNAUTHORIZED, "log in first")),
                };
                if account.must_change_password && !allow_pending {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        "change the first password first",
                    ));
                }
                if account.role < role {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        "your role does not allow this",
                    ));
                }
                let caller = Caller {
                    user: account.name.clone(),
                    peer,
                };
                Ok::<_, Rejection>(Ctx {
                    token,
                    session,
                    account,
                    caller,
                })
            },
        )
}

/// Refuses a state change without the session's CSRF token.
fn csrf_checked(ctx: Ctx, header: Option<String>) -> Result<Ctx, Rejection> {
    let Some(session) = &ctx.session else {
        return Ok(ctx);
    };
    let given = header.unwrap_or_default();
    // (`memcmp::eq` compares equal lengths only, in constant time.)
    if given.len() == session.csrf.len()
        && openssl::memcmp::eq(given.as_bytes(), session.csrf.as_bytes())
    {
        Ok(ctx)
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            "missing or wrong X-CSRF-Token",
        ))
    }
}

fn changing(
    app: App,
    sessions: Arc<Sessions>,
    role: Role,
    allow_pending: bool,
) -> impl Filter<Extract = (Ctx,), Error = Rejection> + Clone {
    caller(app, sessions, role, allow_pending)
        .and(warp::header::optional::<String>("x-csrf-token"))
        .and_then(|ctx, header| async move { csrf_checked(ctx, header) })
}

fn json_body<T: serde::de::DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_JSON_BODY).and(warp::body::json())
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn me(ctx: &Ctx) -> serde_json::Value {
    json!({
        "user": ctx.account.name,
        "role": ctx.account.role,
        "must_change_password": ctx.account.must_change_password,
        "csrf_token": ctx.session.as_ref().map(|s| s.csrf.clone()),
    })
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

#[derive(Deserialize)]
struct PasswordChange {
    current: String,
    new: String,
}

fn session_cookie(token: &str, max_age: u32) -> HeaderValue {
    format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}")
        .parse()
        .expect("a token is header-safe")
}

/// User names and passwords are at most this long (the user store's rule).
const MAX_CREDENTIAL_CHARS: usize = 64;

fn login_refused(refused: LoginRefused) -> Rejection {
    match refused {
        LoginRefused::LockedOut => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins; try again in a minute",
        ),
        LoginRefused::Busy => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many logins at once; try again in a few seconds",
        ),
    }
}

pub fn routes(
    app: App,
    sessions: Arc<Sessions>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let v1 = warp::path("api").and(warp::path("v1"));

    let login = v1
        .and(warp::path!("session"))
        .and(warp::post())
        .and(json_body::<Login>())
        .and(peer())
        .and(with(app.clone()))
        .and(with(sessions.clone()))
        .and_then(
            |login: Login, peer, app: App, sessions: Arc<Sessions>| async move {
                let caller = Caller {
                    user: login.user.chars().take(MAX_CREDENTIAL_CHARS).collect(),
                    peer,
                };
                // No user has a longer name or password: refused without a password check,
                // counted against the address and the empty name (no user has it), so the
                // lock-out keys stay short.
                if login.user.is_empty()
                    || login.user.chars().count() > MAX_CREDENTIAL_CHARS
                    || login.password.chars().count() > MAX_CREDENTIAL_CHARS
                {
                    if let Ok(attempt) = sessions.begin_login(peer, "") {
                        attempt.failed();
                    }
                    return Err(refuse(StatusCode::UNAUTHORIZED, "wrong user or password"));
                }
                let attempt = sessions
                    .begin_login(peer, &login.user)
                    .map_err(login_refused)?;
                if app.sign_in_blocked(&login.user, peer) {
                    return Err(login_refused(LoginRefused::LockedOut));
                }
                let turn = sessions
                    .password_check_turn()
                    .await
                    .map_err(login_refused)?;
                // The KDF is deliberately slow: off the async workers. An unknown user name
                // costs the same check (the appliance compares against a dummy hash).
                let (user, password) = (login.user.clone(), login.password);
                let checker = app.clone();
                let account =
                    tokio::task::spawn_blocking(move || checker.verify_login(&user, &password))
                        .await
                        .map_err(|_| {
                            refuse(StatusCode::INTERNAL_SERVER_ERROR, "login check failed")
                        })?;
                drop(turn);
                app.sign_in_result(&login.user, peer, account.is_some());
                let Some(account) = account else {
                    attempt.failed();
                    app.audit(
                        &caller,
                        "session.login_failed",
                        &caller.user,
                        serde_json::Value::Null,
                    );
                    return Err(refuse(StatusCode::UNAUTHORIZED, "wrong user or password"));
                };
                attempt.succeeded();
                let (token, csrf) = sessions.start(&account.name);
                app.audit(
                    &caller,
                    "session.login",
                    &account.name,
                    serde_json::Value::Null,
                );
                let mut response = json_reply(
                    StatusCode::OK,
                    &json!({
                        "user": account.name,
                        "role": account.role,
                        "must_change_password": account.must_change_password,
                        "csrf_token": csrf,
                    }),
                );
                response
                    .headers_mut()
                    .insert(SET_COOKIE, session_cookie(&token, 12 * 3600));
                Ok::<_, Rejection>(response)
            },
        );

    let whoami = v1
        .and(warp::path!("session"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Viewer, true))
        .map(|ctx: Ctx| json_reply(StatusCode::OK, &me(&ctx)));

    let logout = v1
        .and(warp::path!("session"))
        .and(warp::delete())
        .and(changing(app.clone(), sessions.clone(), Role::Viewer, true))
        .and(with(sessions.clone()))
        .and(with(app.clone()))
        .map(|ctx: Ctx, sessions: Arc<Sessions>, app: App| {
            sessions.end(&ctx.token);
            app.audit(
                &ctx.caller,
                "session.logout",
                &ctx.account.name,
                serde_json::Value::Null,
            );
            let mut response =
                warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
            response
                .headers_mut()
                .insert(SET_COOKIE, session_cookie("", 0));
            response
        });

    let change_password = v1
        .and(warp::path!("session" / "password"))
        .and(warp::post())
        .and(changing(app.clone(), sessions.clone(), Role::Viewer, true))
        .and(json_body::<PasswordChange>())
        .and(with(app.clone()))
        .and(with(sessions.clone()))
        .and_then(
            |ctx: Ctx, change: PasswordChange, app: App, sessions: Arc<Sessions>| async move {
                if change.new.chars().count() < 10 {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "a password needs at least 10 characters",
                    ));
                }
                if change.new == change.current {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "the new password must differ",
                    ));
                }
                // The current password is checked like a login: same lock-out, same bound.
                let attempt = sessions
                    .begin_login(ctx.caller.peer, &ctx.account.name)
                    .map_err(login_refused)?;
                if app.sign_in_blocked(&ctx.account.name, ctx.caller.peer) {
                    return Err(login_refused(LoginRefused::LockedOut));
                }
                let turn = sessions
                    .password_check_turn()
                    .await
                    .map_err(login_refused)?;
                let (user, current, new) = (ctx.account.name.clone(), change.current, change.new);
                let worker = app.clone();
                let result = tokio::task::spawn_blocking(move || {
                    if worker.verify_login(&user, &current).is_none() {
                        return Err(None);
                    }
                    worker.change_password(&user, &new).map_err(Some)
                })
                .await
                .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "password change failed"))?;
                drop(turn);
                app.sign_in_result(
                    &ctx.account.name,
                    ctx.caller.peer,
                    !matches!(result, Err(None)),
                );
                match result {
                    Ok(()) => attempt.succeeded(),
                    Err(None) => {
                        attempt.failed();
                        return Err(refuse(
                            StatusCode::BAD_REQUEST,
                            "the current password is wrong",
                        ));
                    }
                    Err(Some(why)) => return Err(refuse(StatusCode::BAD_REQUEST, &why)),
                }
                sessions.end_others(&ctx.account.name, &ctx.token);
                app.audit(
                    &ctx.caller,
                    "user.password_change",
                    &ctx.account.name,
                    serde_json::Value::Null,
                );
                Ok::<_, Rejection>(
                    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response(),
                )
            },
        );

    let system = v1
        .and(warp::path!("system"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(with(app.clone()))
        .map(|_ctx: Ctx, app: App| json_reply(StatusCode::OK, &app.system()));

    let events = v1
        .and(warp::path!("events"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(with(app.clone()))
        .and(with(sessions.clone()))
        .and_then(|ctx: Ctx, app: App, sessions: Arc<Sessions>| async move {
            // Each stream holds a place until it closes: clients cannot open them without end.
            let place = sessions.live_stream().ok_or_else(|| {
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many live event streams open; close one",
                )
            })?;
            // Identities and faces arrive on this stream: watching is audited like reading
            // stored sightings.
            app.audit(&ctx.caller, "live.watch", "", serde_json::Value::Null);
            let receiver = app.subscribe();
            let stream = futures_util::stream::unfold(
                (receiver, place),
                |(mut receiver, place)| async move {
                    loop {
                        match receiver.recv().await {
                            Ok(value) => {
                                let kind = value["type"].as_str().unwrap_or("event").to_string();
                                let event =
                                    warp::sse::Event::default().event(kind).json_data(&*value);
                                return Some((event, (receiver, place)));
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                },
            );
            Ok::<_, Rejection>(
                warp::sse::reply(warp::sse::keep_alive().stream(stream)).into_response(),
            )
        });

    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Operator, false))
        .and(with(app.clone()))
        .map(|_ctx: Ctx, app: App| {
            let mut response = Response::new(app.metrics().into());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        });

    let openapi = v1
        .and(warp::path!("openapi.json"))
        .and(warp::get())
        .map(|| {
            let mut response = Response::new(OPENAPI.into());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        });

    login
        .or(whoami)
        .unify()
        .or(logout)
        .unify()
        .or(change_password)
        .unify()
        .or(system)
        .unify()
        .or(events)
        .unify()
        .or(metrics)
        .unify()
        .or(openapi)
        .unify()
        .boxed()
        .or(cameras::routes(app.clone(), sessions.clone()))
        .unify()
        .or(watchlists::routes(app.clone(), sessions.clone()))
        .unify()
        .or(sightings::routes(app.clone(), sessions.clone()))
        .unify()
        .or(imports::routes(app.clone(), sessions.clone()))
        .unify()
        .or(alerts::routes(app.clone(), sessions.clone()))
        .unify()
        .or(update::routes(app.clone(), sessions.clone()))
        .unify()
        .or(admin::routes(app, sessions))
        .unify()
}

/// The routes of one part of the API, boxed (keeps warp's types and compile times small).
type Routes = warp::filters::BoxedFilter<(Response,)>;

fn no_content() -> Response {
    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response()
}

fn bytes_reply(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Runs blocking appliance work (stores, models, the KDF) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Rejection> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request's work failed",
            )
        })?
        .map_err(Rejection::from)
}

/// Turns refusals into JSON answers with their status.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    if let Some(ApiError {
        status,
        message,
        field: Some(field),
    }) = rejection.find::<ApiError>()
    {
        return Ok(json_reply(
            *status,
            &json!({ "error": message, "field": field }),
        ));
    }
    let (status, message) = if let Some(e) = rejection.find::<ApiError>() {
        (e.status, e.message.clone())
    } else if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".into())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large".into(),
        )
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        (StatusCode::BAD_REQUEST, format!("bad request body: {e}"))
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "send JSON".into())
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "Content-Length required".into(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        // Last: another route of the same path refusing the method says nothing when this
        // one refused the body.
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
    } else {
        tracing::warn!(?rejection, "unhandled web rejection");
        (StatusCode::BAD_REQUEST, "bad request".into())
    };
    Ok(json_reply(status, &json!({ "error": message })))
}

/// The headers every answer carries.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut warp::http::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(headers, "strict-transport-security", "max-age=31536000");
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    if !headers.contains_key(CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
    response
}
