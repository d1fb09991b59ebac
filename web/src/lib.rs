//! Vigil's web side: the REST API under `/api/v1` and the operator's browser UI, as warp
//! filters. It knows nothing of ONVIF or of the appliance's types: the product plugs in
//! through [`Appliance`]. The appliance serves [`service`] on its HTTPS listener (TLS by
//! OpenSSL in front of warp) beside the ONVIF paths; plain HTTP only redirects.

mod api;
mod port;
mod sessions;
pub mod spool;
mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

#[doc(hidden)]
pub use api::upload_answer;
pub use port::{
    Account, Appliance, AuditQuery, Caller, ClipUpload, Failure, PersonQuery, Probe, Role,
    SightingQuery, Upload,
};
pub use sessions::Sessions;
use warp::Filter;

/// The peer's address, put in each request's extensions by the server (warp's own
/// `remote()` only works under warp's server).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Request bodies above this are refused (413).
pub const MAX_JSON_BODY: u64 = 64 * 1024;

/// Every route of the web side, with the security headers on every answer.
pub fn routes(
    app: Arc<dyn Appliance>,
    sessions: Arc<Sessions>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    let api = api::routes(app, sessions);
    ui::routes()
        .or(api)
        .unify()
        .recover(api::recover)
        .unify()
        .map(api::secure)
}

/// One request's answer, as the appliance's hyper server awaits it.
pub type Answer = Pin<Box<dyn Future<Output = warp::reply::Response> + Send>>;

/// The routes as a function of requests, for the appliance's hyper server (which puts the
/// [`Peer`] in the request's extensions).
pub fn handler<B>(
    app: Arc<dyn Appliance>,
    sessions: Arc<Sessions>,
) -> impl Fn(warp::http::Request<B>) -> Answer + Clone + Send + Sync + 'static
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = warp::service(routes(app, sessions));
    move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            match tower_service::Service::call(&mut service, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    }
}

/// The answer of the plain-HTTP listener to everything but ONVIF: go to HTTPS.
pub fn redirect_to_https(
    host: Option<&str>,
    https_port: u16,
    path_and_query: &str,
) -> (u16, String) {
    let host = host
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-[]".contains(c))
        })
        .unwrap_or("127.0.0.1");
    (308, format!("https://{host}:{https_port}{path_and_query}"))
}

#[cfg(test)]
mod tests;
