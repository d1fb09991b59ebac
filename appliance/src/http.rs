//! The appliance's HTTP(S) server: accepts connections, with TLS where an acceptor is
//! given, and routes `/onvif/...` to the ONVIF device. (The web UI is to join here, as
//! further routes on the same server.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Request bodies above this are refused with 413 before they are read whole.
pub const MAX_BODY: usize = 1024 * 1024;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `stop` turns true; over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    device: Arc<onvif::Device>,
    tls: Option<Arc<openssl::ssl::SslAcceptor>>,
    mut stop: watch::Receiver<bool>,
) {
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
        let device = device.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, false, device).await,
                Some(acceptor) => {
                    let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                        return;
                    };
                    let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, stream) else {
                        return;
                    };
                    let handshake = std::pin::Pin::new(&mut stream).accept();
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(())) => serve_connection(stream, peer, true, device).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, peer: SocketAddr, https: bool, device: Arc<onvif::Device>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let device = device.clone();
        async move { Ok::<_, Infallible>(route(request, peer, https, &device).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn route(
    request: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
    device: &Arc<onvif::Device>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    if !path.starts_with("/onvif/") {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
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
    if declared.is_some_and(|l| l > MAX_BODY) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable request body"),
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

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}
