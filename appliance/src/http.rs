//! The appliance's HTTP(S) servers: accept connections, with TLS where an acceptor is given,
//! and route `/onvif/...` to the ONVIF device and everything else to the web side (over
//! HTTPS; plain HTTP answers those with a redirect to HTTPS).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// ONVIF request bodies above this are refused with 413 before they are read whole.
pub const MAX_BODY: usize = 1024 * 1024;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The web side's request handler (see `web::handler`).
pub type WebHandler = Arc<dyn Fn(Request<Incoming>) -> web::Answer + Send + Sync>;

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
    mut stop: watch::Receiver<bool>,
) {
    let router = Arc::new(router);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        // Answers go out as written: with Nagle, a response's second segment (the body after
        // the head, or TLS records) waits for the client's delayed ACK, 40 ms a request.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, false, router).await,
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
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(())) => serve_connection(stream, peer, true, router).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, peer: SocketAddr, https: bool, router: Arc<Router>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(route(request, peer, https, &router).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn route(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
    router: &Router,
) -> Response<Body> {
    let path = request.uri().path();
    if path.starts_with("/onvif/") {
        return match &router.device {
            Some(device) => onvif(request, peer, https, device).await.map(boxed),
            None => plain(StatusCode::NOT_FOUND, "not found"),
        };
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
    request: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
    device: &Arc<onvif::Device>,
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

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(boxed(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response
}
