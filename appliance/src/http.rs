//! The appliance's HTTP(S) servers: accept connections, with TLS where an acceptor is given,
//! and route `/onvif/...` to the ONVIF device and everything else to the web side (over
//! HTTPS; plain HTTP answers those with a redirect to HTTPS).
//!
//! Anyone on the LAN can connect, so every listener bounds what clients can hold
//! ([`ListenerLimits`]): connections in all and per address (past either, a new connection is
//! closed at once), the time a request head (or a TLS handshake, or the wait for a kept-alive
//! connection's next request) may take, how long a request body may stall, and how many
//! requests without credentials one address may make (a token bucket per address: past it,
//! 429 before any work; a request with credentials is paid for by the authentication's own
//! failure limits instead).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::ListenerLimits;

/// ONVIF request bodies above this are refused with 413 before they are read whole.
pub const MAX_BODY: usize = 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// A request's body as handlers get it: abandoned when it stalls (see [`IdleTimeoutBody`]).
pub type RequestBody = IdleTimeoutBody<Incoming>;

/// The web side's request handler (see `web::handler`).
pub type WebHandler = Arc<dyn Fn(Request<RequestBody>) -> web::Answer + Send + Sync>;

/// A listener's limits in force, shared by its connections.
#[derive(Clone)]
pub struct Limits(Arc<LimitsInner>);

struct LimitsInner {
    slots: Arc<Semaphore>,
    per_peer: parking_lot::Mutex<HashMap<IpAddr, usize>>,
    max_per_peer: usize,
    header_timeout: Duration,
    body_idle_timeout: Duration,
    unauthenticated: parking_lot::Mutex<HashMap<IpAddr, Bucket>>,
    unauthenticated_per_s: f64,
    unauthenticated_burst: f64,
}

/// Addresses whose unauthenticated requests are counted at once; past it, full buckets go
/// first, then the address is treated as out of tokens (bounded memory under spoofing).
const MAX_COUNTED_PEERS: usize = 10_000;

/// Tokens left and when they were counted.
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

/// An admitted connection's places in the counts, given back when it closes.
struct Admission {
    _slot: OwnedSemaphorePermit,
    limits: Arc<LimitsInner>,
    peer: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_peer = self.limits.per_peer.lock();
        if let Some(open) = per_peer.get_mut(&self.peer) {
            *open -= 1;
            if *open == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

impl Limits {
    pub fn new(config: &ListenerLimits) -> Self {
        Self(Arc::new(LimitsInner {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            per_peer: parking_lot::Mutex::default(),
            max_per_peer: config.max_connections_per_peer,
            header_timeout: Duration::from_secs_f64(config.header_timeout_s),
            body_idle_timeout: Duration::from_secs_f64(config.body_idle_timeout_s),
            unauthenticated: parking_lot::Mutex::default(),
            unauthenticated_per_s: config.unauthenticated_per_s,
            unauthenticated_burst: f64::from(config.unauthenticated_burst),
        }))
    }

    /// Takes a token for a request without credentials from `peer`; false when it has none.
    fn charge_unauthenticated(&self, peer: IpAddr) -> bool {
        let limits = &self.0;
        let now = std::time::Instant::now();
        let refill = |b: &Bucket| {
            (b.tokens + now.duration_since(b.at).as_secs_f64() * limits.unauthenticated_per_s)
                .min(limits.unauthenticated_burst)
        };
        let mut buckets = limits.unauthenticated.lock();
        if !buckets.contains_key(&peer) && buckets.len() >= MAX_COUNTED_PEERS {
            buckets.retain(|_, b| refill(b) < limits.unauthenticated_burst);
            if buckets.len() >= MAX_COUNTED_PEERS {
                return false;
            }
        }
        let bucket = buckets.entry(peer).or_insert(Bucket {
            tokens: limits.unauthenticated_burst,
            at: now,
        });
        bucket.tokens = refill(bucket);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }

    /// A place for a new connection from `peer`, if there is one.
    fn admit(&self, peer: IpAddr) -> Option<Admission> {
        let slot = self.0.slots.clone().try_acquire_owned().ok()?;
        let mut per_peer = self.0.per_peer.lock();
        let open = per_peer.entry(peer).or_insert(0);
        if *open >= self.0.max_per_peer {
            return None;
        }
        *open += 1;
        Some(Admission {
            _slot: slot,
            limits: self.0.clone(),
            peer,
        })
    }
}

/// A request body that fails when no data arrives for its idle timeout, so a client that
/// announces a body and then sends it byte by byte (or not at all) cannot hold a handler.
pub struct IdleTimeoutBody<B> {
    inner: Pin<Box<B>>,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner: Box::pin(inner),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

/// The error of a body that stalled.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?}")]
pub struct BodyStalled(Duration);

impl<B> hyper::body::Body for IdleTimeoutBody<B>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Where requests go.
#[derive(Clone, Default)]
pub struct Router {
    pub device: Option<Arc<onvif::Device>>,
    /// Served over HTTPS only.
    pub web: Option<WebHandler>,
    /// Plain-HTTP requests for the web side are redirected to HTTPS on this port.
    pub https_port: Option<u16>,
}

/// Serves until `stop` turns true; over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<crate::tls::SharedAcceptor>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let router = Arc::new(router);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: retrying at once would spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Some(admission) = limits.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: the listener's connection limit is reached");
            continue;
        };
        // Answers go out as written: with Nagle, a response's second segment (the body after
        // the head, or TLS records) waits for the client's delayed ACK, 40 ms a request.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _admission = admission;
            match tls {
                None => serve_connection(stream, peer, false, router, limits).await,
                Some(acceptor) => {
                    // The acceptor of now: an installed certificate serves new connections.
                    let acceptor = acceptor.read().clone();
                    let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                        return;
                    };
                    let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, stream) else {
                        return;
                    };
                    let handshake = std::pin::Pin::new(&mut stream).accept();
                    match tokio::time::timeout(limits.0.header_timeout, handshake).await {
                        Ok(Ok(())) => serve_connection(stream, peer, true, router, limits).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    https: bool,
    router: Arc<Router>,
    limits: Limits,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let body_idle = limits.0.body_idle_timeout;
    let header_timeout = limits.0.header_timeout;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (router, limits) = (router.clone(), limits.clone());
        let request = request.map(|body| IdleTimeoutBody::new(body, body_idle));
        async move { Ok::<_, Infallible>(route(request, peer, https, &router, &limits).await) }
    });
    // hyper's header timer also runs while a kept-alive connection waits for its next
    // request: it is the idle timeout too.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn route(
    mut request: Request<RequestBody>,
    peer: SocketAddr,
    https: bool,
    router: &Router,
    limits: &Limits,
) -> Response<Body> {
    let headers = request.headers();
    let credentials = headers.contains_key("authorization") || headers.contains_key("cookie");
    let path = request.uri().path();
    if path.starts_with("/onvif/") {
        return match &router.device {
            Some(device) => onvif(request, peer, https, device, credentials, limits)
                .await
                .map(boxed),
            None => plain(StatusCode::NOT_FOUND, "not found"),
        };
    }
    if !credentials && !limits.charge_unauthenticated(peer.ip()) {
        return too_many_unauthenticated();
    }
    match (&router.web, https, router.https_port) {
        (Some(web), true, _) => {
            request.extensions_mut().insert(web::Peer(peer));
            web(request).await.map(|b| b.map_err(Into::into).boxed())
        }
        (_, false, Some(port)) => {
            let host = request.headers().get("host").and_then(|h| h.to_str().ok());
            let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let (status, location) = web::redirect_to_https(host, port, target);
            let mut response = plain(
                StatusCode::from_u16(status).unwrap_or(StatusCode::PERMANENT_REDIRECT),
                "use HTTPS",
            );
            if let Ok(value) = hyper::header::HeaderValue::from_str(&location) {
                response.headers_mut().insert("location", value);
            }
            response
        }
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

fn boxed(body: Full<Bytes>) -> Body {
    body.map_err(|never| match never {}).boxed()
}

async fn onvif(
    request: Request<RequestBody>,
    peer: SocketAddr,
    https: bool,
    device: &Arc<onvif::Device>,
    credentials: bool,
    limits: &Limits,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let method = request.method().as_str().to_string();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (host, authorization) = (header("host"), header("authorization"));
    let declared = header("content-length").and_then(|l| l.parse::<usize>().ok());
    let too_large = || {
        let mut r = Response::new(Full::new(Bytes::from_static(b"request body too large")));
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        r
    };
    if declared.is_some_and(|l| l > MAX_BODY) {
        return too_large();
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large()
        }
        Err(_) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"unreadable request body")));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
    };
    // WS-Security travels in the body: a request naming a UsernameToken is paid for by the
    // device's authentication failure limits, any other by this address's bucket.
    let credentials = credentials || carries_username_token(&body);
    if !credentials && !limits.charge_unauthenticated(peer.ip()) {
        let mut r = Response::new(Full::new(Bytes::from_static(TOO_MANY_UNAUTHENTICATED)));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return r;
    }
    let answer = device
        .handle(onvif::HttpRequest {
            method: &method,
            path: &path,
            host: host.as_deref(),
            authorization: authorization.as_deref(),
            body: &body,
            peer,
            https,
        })
        .await;
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

const TOO_MANY_UNAUTHENTICATED: &[u8] =
    b"too many requests without credentials from this address; slow down or authenticate";

fn too_many_unauthenticated() -> Response<Body> {
    let mut response = Response::new(boxed(Full::new(Bytes::from_static(
        TOO_MANY_UNAUTHENTICATED,
    ))));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
}

/// Whether a SOAP body carries a WS-Security UsernameToken (a cheap look before parsing).
fn carries_username_token(body: &[u8]) -> bool {
    body.windows(b"UsernameToken".len())
        .any(|w| w == b"UsernameToken")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(boxed(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response
}
