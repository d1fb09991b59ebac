//! RTSP over TLS (`rtsps://`) with the camera's certificate verified.
//!
//! Why Vigil terminates the TLS itself: ffmpeg's RTSP demuxer opens `rtsps://` through its
//! `tls` protocol with no options (libavformat/rtsp.c, `ff_rtsp_connect`: the URL
//! `tls://host:port?timeout=N` is opened with `ffurl_open_whitelist(.., NULL, ..)`), and that
//! protocol's `tls_verify` defaults to 0 (libavformat/tls.h): the camera's certificate is not
//! checked, so whoever is on the path can pose as the camera, read its credentials and feed
//! the appliance pictures of their choosing. Neither a CA nor a pin can be given through the
//! demuxer, and none of ffmpeg's TLS back-ends can pin a certificate at all.
//!
//! So for an `rtsps://` camera the ingest opens the TLS connection here, with OpenSSL, and
//! checks the certificate: its SHA-256 against the camera's `tls_pin` (cameras with
//! self-signed certificates), or its chain against the camera's `tls_ca`, or else against the
//! system's CAs, both with the host name. Only then does ffmpeg get a plain
//! `rtsp://127.0.0.1:PORT/...` whose port accepts that one connection and relays its bytes
//! through the verified session. RTSP over TLS carries its media interleaved on that one
//! connection, so ffmpeg is told to use TCP whatever the camera's `transport`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::ssl::{ErrorCode, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509VerifyResult, X509};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_openssl::SslStream;

use super::ingest::StopSignal;
use crate::config::CameraConfig;

/// RTSP over TLS's port when the URL gives none (RFC 2326; ffmpeg's RTSPS_DEFAULT_PORT).
pub const RTSPS_DEFAULT_PORT: u16 = 322;

/// How often a wait checks the camera's stop signal.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What is wrong with a camera's `tls_pin` or `tls_ca` (also the configuration's message).
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("must be the certificate's SHA-256: \"sha256:AB:CD:...\" (32 bytes) or 64 hex digits")]
    BadPin,
    #[error("must be an absolute path")]
    RelativeCa,
    #[error("cannot read {path}: {source}")]
    CaRead { path: PathBuf, source: io::Error },
    #[error("{path} holds no PEM certificate")]
    CaEmpty { path: PathBuf },
    #[error("{path}: not PEM certificates ({source})")]
    CaParse {
        path: PathBuf,
        source: openssl::error::ErrorStack,
    },
}

/// Why a camera's TLS connection could not be made or verified: the camera's failure reason.
#[derive(Debug, thiserror::Error)]
pub enum TlsRelayError {
    #[error("TLS: bad camera address: {0}")]
    Address(String),
    #[error("TLS: tls_pin {0}")]
    Pin(TrustError),
    #[error("TLS: tls_ca {0}")]
    Ca(TrustError),
    #[error("TLS: cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("TLS: cannot connect to {address}: {source}")]
    Connect { address: String, source: io::Error },
    #[error("TLS: no answer for {} s", .0.as_secs_f32())]
    Timeout(Duration),
    #[error("TLS: certificate not trusted ({0}): give tls_ca or tls_pin")]
    Untrusted(String),
    #[error("TLS: certificate not trusted by tls_ca ({0})")]
    UntrustedByCa(String),
    #[error("TLS: the camera's certificate does not match tls_pin (it presents {0})")]
    PinMismatch(String),
    #[error("TLS: the camera presented no certificate")]
    NoCertificate,
    #[error("TLS: handshake failed: {0}")]
    Handshake(String),
    #[error("TLS: the camera closed the connection during the handshake")]
    PeerClosed,
    #[error("TLS: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("TLS: relay: {0}")]
    Local(io::Error),
    #[error("stopped")]
    Stopped,
}

/// `sha256:AB:CD:...` (any case, colons optional) or 64 hex digits, as the 32 bytes.
pub fn parse_pin(text: &str) -> Result<[u8; 32], TrustError> {
    let text = text.trim();
    let hex = match text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &text[7..],
        _ => text,
    };
    let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
    if digits.len() != 64 {
        return Err(TrustError::BadPin);
    }
    let mut pin = [0u8; 32];
    for (byte, pair) in pin.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| TrustError::BadPin)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| TrustError::BadPin)?;
    }
    Ok(pin)
}

/// The certificates of a `tls_ca` PEM file (at least one).
pub fn load_ca(path: &Path) -> Result<Vec<X509>, TrustError> {
    if !path.is_absolute() {
        return Err(TrustError::RelativeCa);
    }
    let pem = std::fs::read(path).map_err(|source| TrustError::CaRead {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = X509::stack_from_pem(&pem).map_err(|source| TrustError::CaParse {
        path: path.to_path_buf(),
        source,
    })?;
    if certs.is_empty() {
        return Err(TrustError::CaEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// `sha256:AB:CD:...`, the form `tls_pin` takes.
pub fn fingerprint(digest: &[u8]) -> String {
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", hex.join(":"))
}

/// Where an `rtsps://` URL points: host (IPv6 without brackets) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("rtsps://")
            .ok_or_else(|| "not an rtsps:// URL".to_string())?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host_port = authority.rsplit('@').next().unwrap_or("");
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| "unclosed [ in the host".to_string())?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        let port = match port {
            None => RTSPS_DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("bad port {p:?}"))?,
        };
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

/// The URL ffmpeg opens for a relayed camera: `url` (with its credentials) as plain `rtsp://`
/// to the relay's loopback `port`, path and query kept.
pub fn loopback_url(url: &str, port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let credentials = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!("rtsp://{credentials}127.0.0.1:{port}{path}")
}

/// How the camera's certificate is checked.
enum Trust {
    System,
    Ca(Vec<X509>),
    Pin([u8; 32]),
}

impl Trust {
    /// Read at each connection, so a replaced CA file counts from the next one.
    fn of(camera: &CameraConfig) -> Result<Self, TlsRelayError> {
        if let Some(pin) = &camera.tls_pin {
            return parse_pin(pin).map(Trust::Pin).map_err(TlsRelayError::Pin);
        }
        if let Some(ca) = &camera.tls_ca {
            return load_ca(ca).map(Trust::Ca).map_err(TlsRelayError::Ca);
        }
        Ok(Trust::System)
    }

    fn name(&self) -> &'static str {
        match self {
            Trust::System => "system CAs",
            Trust::Ca(_) => "tls_ca",
            Trust::Pin(_) => "tls_pin",
        }
    }

    fn connector(&self) -> Result<SslConnector, openssl::error::ErrorStack> {
        // The builder verifies the peer against the system's CAs by default.
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        match self {
            Trust::System => {}
            Trust::Ca(certs) => {
                // The camera's CA alone, not the system's too; it may be an intermediate the
                // operator chose to trust, hence a partial chain is enough.
                let mut store = X509StoreBuilder::new()?;
                for cert in certs {
                    store.add_cert(cert.clone())?;
                }
                builder.set_cert_store(store.build());
                builder
                    .verify_param_mut()
                    .set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
            }
            // Self-signed cameras: no chain to check; the certificate itself is compared
            // after the handshake, before a byte of RTSP is sent.
            Trust::Pin(_) => builder.set_verify(SslVerifyMode::NONE),
        }
        Ok(builder.build())
    }
}

/// A verified TLS connection to the camera and the loopback port ffmpeg connects to; its
/// thread relays the bytes. Dropping it ends the relay and waits for its thread.
pub struct Relay {
    port: u16,
    /// Why the relay ended, when the camera's side ended it.
    ended: Arc<parking_lot::Mutex<Option<String>>>,
    /// Dropped to end the relay.
    cancel: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Connects to the camera and verifies it (within `timeout`, or until `stop`), then
    /// listens on 127.0.0.1 for ffmpeg's one connection, which must come within `timeout`.
    pub fn open(
        camera: &CameraConfig,
        timeout: Duration,
        stop: &StopSignal,
    ) -> Result<Self, TlsRelayError> {
        let target = Target::parse(&camera.url).map_err(TlsRelayError::Address)?;
        let trust = Trust::of(camera)?;
        let connector = trust.connector()?;
        // Resolved here, blocking, as ffmpeg would: the runtime then needs no thread pool.
        let addresses: Vec<SocketAddr> = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|source| TlsRelayError::Resolve {
                host: target.host.clone(),
                source,
            })?
            .collect();
        // One thread per connection: this one until the handshake, the relay's after.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(TlsRelayError::Local)?;
        let tls = runtime.block_on(async {
            tokio::select! {
                r = tokio::time::timeout(
                    timeout,
                    handshake(&connector, &trust, &target, &addresses),
                ) => r.map_err(|_| TlsRelayError::Timeout(timeout))?,
                () = stopped(stop) => Err(TlsRelayError::Stopped),
            }
        })?;
        tracing::info!(camera = %camera.id, host = %target.host, port = target.port,
            trust = trust.name(), "rtsps: camera certificate verified");

        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(TlsRelayError::Local)?;
        let port = listener.local_addr().map_err(TlsRelayError::Local)?.port();
        let ended = Arc::new(parking_lot::Mutex::new(None));
        let (cancel, cancelled) = oneshot::channel();
        let id = camera.id.clone();
        let ended_by = ended.clone();
        let thread = std::thread::Builder::new()
            .name("tls-relay".into())
            .spawn(move || {
                let reason = runtime.block_on(relay(listener, tls, timeout, cancelled, ended_by));
                if let Some(reason) = &reason {
                    tracing::debug!(camera = %id, %reason, "rtsps relay ended");
                }
            })
            .map_err(TlsRelayError::Local)?;
        Ok(Self {
            port,
            ended,
            cancel: Some(cancel),
            thread: Some(thread),
        })
    }

    /// What ffmpeg opens: the camera's URL (with credentials) pointed at the relay.
    pub fn ffmpeg_url(&self, url_with_credentials: &str) -> String {
        loopback_url(url_with_credentials, self.port)
    }

    /// Why the camera's side ended the relay, if it did.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The relay's thread waits on the receiving end: this ends it at once.
        drop(self.cancel.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn stopped(stop: &StopSignal) {
    while !stop.is_stopped() {
        tokio::time::sleep(STOP_POLL).await;
    }
}

async fn connect(addresses: &[SocketAddr]) -> Result<TcpStream, TlsRelayError> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(source) => {
                last = Some(TlsRelayError::Connect {
                    address: address.to_string(),
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| TlsRelayError::Address("the host name has no address".into())))
}

async fn handshake(
    connector: &SslConnector,
    trust: &Trust,
    target: &Target,
    addresses: &[SocketAddr],
) -> Result<SslStream<TcpStream>, TlsRelayError> {
    let tcp = connect(addresses).await?;
    // Interleaved RTSP: small requests and replies should not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    // SNI for names; the host name (or address) checked unless the certificate is pinned.
    let ssl = connector
        .configure()?
        .verify_hostname(!matches!(trust, Trust::Pin(_)))
        .into_ssl(&target.host)?;
    let mut stream = SslStream::new(ssl, tcp)?;
    if let Err(e) = Pin::new(&mut stream).connect().await {
        let verified = stream.ssl().verify_result();
        return Err(if verified != X509VerifyResult::OK {
            let why = format!("{} for {}", verified.error_string(), target.host);
            match trust {
                Trust::Ca(_) => TlsRelayError::UntrustedByCa(why),
                _ => TlsRelayError::Untrusted(why),
            }
        } else if e.code() == ErrorCode::ZERO_RETURN
            || (e.code() == ErrorCode::SYSCALL && e.io_error().is_none_or(closed))
            || e.to_string().contains("unexpected eof")
        {
            TlsRelayError::PeerClosed
        } else {
            TlsRelayError::Handshake(e.to_string())
        });
    }
    if let Trust::Pin(pin) = trust {
        let cert = stream
            .ssl()
            .peer_certificate()
            .ok_or(TlsRelayError::NoCertificate)?;
        let digest = cert.digest(MessageDigest::sha256())?;
        if digest.as_ref() != pin.as_slice() {
            return Err(TlsRelayError::PinMismatch(fingerprint(&digest)));
        }
    }
    Ok(stream)
}

const CAMERA_CLOSED: &str = "TLS: the camera closed the connection";

/// Accepts ffmpeg's connection (one, within `accept_within`) and relays until either side
/// ends it or `cancelled`; the reason when the camera's side ended it.
async fn relay(
    listener: std::net::TcpListener,
    camera: SslStream<TcpStream>,
    accept_within: Duration,
    mut cancelled: oneshot::Receiver<()>,
    ended: Arc<parking_lot::Mutex<Option<String>>>,
) -> Option<String> {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return Some(format!("TLS: relay: {e}")),
    };
    let local = tokio::select! {
        r = tokio::time::timeout(accept_within, listener.accept()) => match r {
            Ok(Ok((stream, _))) => stream,
            // ffmpeg, never connecting, fails on its own; this only ends the relay.
            Ok(Err(e)) => return Some(format!("TLS: relay: {e}")),
            Err(_) => return Some("TLS: relay: ffmpeg did not connect".into()),
        },
        _ = &mut cancelled => return None,
    };
    // Exactly one connection: the port closes now.
    drop(listener);
    let _ = local.set_nodelay(true);
    let (mut camera_r, mut camera_w) = tokio::io::split(camera);
    let (mut ffmpeg_r, mut ffmpeg_w) = local.into_split();
    let reason = tokio::select! {
        r = camera_to_ffmpeg(&mut camera_r, &mut ffmpeg_w) => r,
        r = ffmpeg_to_camera(&mut ffmpeg_r, &mut camera_w) => r,
        _ = &mut cancelled => None,
    };
    // Recorded before ffmpeg's side closes, so its failure finds the reason.
    if let Some(reason) = &reason {
        *ended.lock() = Some(reason.clone());
    }
    drop((ffmpeg_r, ffmpeg_w));
    // A close_notify for the camera, without waiting on it long.
    let _ = tokio::time::timeout(Duration::from_secs(1), camera_w.shutdown()).await;
    reason
}

type CameraRead = ReadHalf<SslStream<TcpStream>>;
type CameraWrite = WriteHalf<SslStream<TcpStream>>;

async fn camera_to_ffmpeg(from: &mut CameraRead, to: &mut OwnedWriteHalf) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) => return Some(CAMERA_CLOSED.into()),
            Ok(n) => {
                // ffmpeg gone: its session is over, nothing to report.
                to.write_all(&buf[..n]).await.ok()?;
            }
            Err(e) if closed(&e) => return Some(CAMERA_CLOSED.into()),
            Err(e) => return Some(format!("TLS: reading from the camera failed: {e}")),
        }
    }
}

async fn ffmpeg_to_camera(from: &mut OwnedReadHalf, to: &mut CameraWrite) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.ok().filter(|&n| n > 0)?;
        match to.write_all(&buf[..n]).await {
            Ok(()) => {}
            Err(e) if closed(&e) => return Some(CAMERA_CLOSED.into()),
            Err(e) => return Some(format!("TLS: writing to the camera failed: {e}")),
        }
    }
}

/// The camera hung up (with or without a TLS close_notify).
fn closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    ) || e.to_string().contains("unexpected eof")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_in_both_forms() {
        let hex = "ab".repeat(32);
        let colons = format!("SHA256:{}", vec!["AB"; 32].join(":"));
        assert_eq!(parse_pin(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_pin(&colons).unwrap(), [0xab; 32]);
        assert_eq!(fingerprint(&[0xab; 32]), colons.replace("SHA256", "sha256"));
        for bad in ["", "sha256:", &"ab".repeat(31), &"zz".repeat(32), "sha1:ab"] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_and_loopback_urls() {
        let t = |url: &str| Target::parse(url);
        assert_eq!(
            t("rtsps://u:p@cam.local/live").unwrap(),
            Target {
                host: "cam.local".into(),
                port: 322
            }
        );
        assert_eq!(t("rtsps://[::1]:8322/x").unwrap().host, "::1");
        assert_eq!(t("rtsps://10.0.0.2:8322?x").unwrap().port, 8322);
        assert!(t("rtsps://h:0/x").is_err() && t("rtsps:///x").is_err());
        assert_eq!(
            loopback_url("rtsps://u:p%40@cam.local:8322/live?a=1", 4000),
            "rtsp://u:p%40@127.0.0.1:4000/live?a=1"
        );
        assert_eq!(
            loopback_url("rtsps://cam.local", 4000),
            "rtsp://127.0.0.1:4000"
        );
    }
}
