//! Vigil's own RTSP server for the ONVIF metadata stream (Profile M): one mount per video
//! source, `rtsp://HOST:PORT/onvif/metadata/<source token>`, carrying one
//! `vnd.onvif.metadata` RTP track over UDP, interleaved in the RTSP connection, or in an
//! RTSP-over-HTTP tunnel on the same port, behind Digest authentication with the ONVIF users. See `DESIGN.md` beside this file.
//!
//! The product starts an [`RtspServer`] with its [`Device`], then calls
//! [`RtspServer::publish`] with a [`MetadataFrame`] per analysed frame of a source; a source
//! that publishes nothing for a second gets an empty frame so clients see the stream alive.

mod connection;
mod framing;
pub mod metadata;
mod methods;
pub mod rtp;
mod sessions;
mod tunnel;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinHandle;

use crate::events::TopicFilter;
use crate::server::Device;
pub use metadata::{
    sample_frame, BoundingBox, MetadataFrame, MetadataObject, ObjectClass, Recognition,
};
use sessions::Sessions;

/// Where mounts live: `MOUNT_PREFIX` + source token.
pub const MOUNT_PREFIX: &str = "/onvif/metadata/";
/// The control name of the one track of a mount.
pub const TRACK: &str = "track1";

/// How the server listens and what it allows.
#[derive(Debug, Clone)]
pub struct RtspConfig {
    /// The RTSP (TCP) address; RTP and RTCP leave from UDP sockets on the same IP.
    pub bind: SocketAddr,
    /// The UDP port RTP leaves from (RTCP from the next one); 0 picks any two.
    pub rtp_port: u16,
    pub max_sessions: usize,
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: usize,
    /// A session not heard of for this long (no request, no RTCP) is removed.
    pub session_timeout: Duration,
    /// A source that published nothing for this long gets an empty frame.
    pub keep_alive_after: Duration,
    pub limits: Limits,
}

impl Default for RtspConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8554)),
            rtp_port: 0,
            max_sessions: 64,
            max_connections: 64,
            max_connections_per_address: 8,
            session_timeout: Duration::from_secs(60),
            keep_alive_after: Duration::from_secs(1),
            limits: Limits::default(),
        }
    }
}

/// What one connection may send.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
    /// A request must arrive whole this long after its first byte (slow senders).
    pub request_timeout: Duration,
    /// A connection without a session that sends nothing for this long is closed (one with
    /// a session: after the session timeout).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 8 * 1024,
            max_headers: 32,
            max_body_bytes: 4 * 1024,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    #[error("binding {what} on {address} failed: {source}")]
    Bind {
        what: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The running server; clones share it. Dropping the last clone stops it.
#[derive(Clone)]
pub struct RtspServer {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

pub(crate) struct Shared {
    pub device: Arc<Device>,
    pub config: RtspConfig,
    pub local: SocketAddr,
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub sessions: Mutex<Sessions>,
    /// When each source last had a document sent.
    last_document: Mutex<HashMap<String, Instant>>,
    pub connections: Arc<Semaphore>,
    /// Open connections per client address.
    pub per_address: Mutex<HashMap<IpAddr, usize>>,
    pub tunnels: Mutex<tunnel::Tunnels>,
}

/// The server's tasks; when the last clone goes they stop, and Media stops offering the
/// metadata profiles.
struct Tasks {
    handles: Vec<JoinHandle<()>>,
    device: Arc<Device>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.handles {
            task.abort();
        }
        self.device.set_metadata_rtsp_port(None);
    }
}

impl RtspServer {
    /// Binds, starts serving, and tells `device` the port so Media's GetStreamUri can name
    /// the metadata mounts.
    pub async fn start(device: Arc<Device>, config: RtspConfig) -> Result<Self, RtspError> {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| bind_error("RTSP", config.bind, source))?;
        let local = listener
            .local_addr()
            .map_err(|source| bind_error("RTSP", config.bind, source))?;
        let (rtp, rtcp) = udp_pair(config.bind.ip(), config.rtp_port).await?;
        device.set_metadata_rtsp_port(Some(local.port()));
        let shared = Arc::new(Shared {
            device,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
            local,
            rtp,
            rtcp,
            sessions: Mutex::new(Sessions::default()),
            last_document: Mutex::new(HashMap::new()),
            per_address: Mutex::new(HashMap::new()),
            tunnels: Mutex::new(tunnel::Tunnels::default()),
        });
        let tasks = vec![
            tokio::spawn(connection::accept(shared.clone(), listener)),
            tokio::spawn(keep_alive(shared.clone())),
            tokio::spawn(receive_rtcp(shared.clone())),
            tokio::spawn(forward_events(shared.clone())),
        ];
        tracing::info!(address = %local, "RTSP metadata server listening");
        Ok(Self {
            shared: shared.clone(),
            _tasks: Arc::new(Tasks {
                handles: tasks,
                device: shared.device.clone(),
            }),
        })
    }

    /// The address RTSP is served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The UDP ports RTP and RTCP leave from.
    pub fn udp_ports(&self) -> (u16, u16) {
        (port_of(&self.shared.rtp), port_of(&self.shared.rtcp))
    }

    /// Sends the document of one analysed frame of `source_token` to every session playing
    /// it; returns how many sessions it reached. Cheap without sessions: nothing is rendered.
    pub fn publish(&self, source_token: &str, frame: &MetadataFrame) -> usize {
        self.shared.publish(source_token, frame)
    }

    /// Sessions currently set up (playing or not).
    pub fn session_count(&self) -> usize {
        self.shared.sessions.lock().len()
    }

    /// Sessions playing `source_token` now (a product may skip building documents without).
    pub fn playing_sessions(&self, source_token: &str) -> usize {
        self.shared.sessions.lock().playing(source_token)
    }

    /// The path of a source's mount.
    pub fn mount_path(source_token: &str) -> String {
        format!("{MOUNT_PREFIX}{source_token}")
    }
}

impl Shared {
    fn publish(&self, source: &str, frame: &MetadataFrame) -> usize {
        if self.sessions.lock().playing(source) == 0 {
            return 0;
        }
        // A client that set the metadata configuration's Analytics off gets no faces.
        let document = if self.device.metadata_settings(source).analytics {
            frame.to_xml()
        } else {
            MetadataFrame {
                objects: Vec::new(),
                ..frame.clone()
            }
            .to_xml()
        };
        self.last_document
            .lock()
            .insert(source.to_string(), Instant::now());
        self.sessions
            .lock()
            .deliver(source, document.as_bytes(), &self.rtp)
    }
}

/// Every tick: expires silent sessions, sends an empty frame to sources that would
/// otherwise go `keep_alive_after` without a document, and every few seconds an RTCP
/// sender report.
async fn keep_alive(shared: Arc<Shared>) {
    let tick = (shared.config.keep_alive_after / 5).max(Duration::from_millis(20));
    let mut ticker = tokio::time::interval(tick);
    let mut last_report = Instant::now();
    loop {
        ticker.tick().await;
        let playing = {
            let mut sessions = shared.sessions.lock();
            sessions.expire(shared.config.session_timeout);
            sessions.playing_sources()
        };
        for source in playing {
            let idle = shared
                .last_document
                .lock()
                .get(&source)
                .is_none_or(|at| at.elapsed() + tick >= shared.config.keep_alive_after);
            if idle {
                shared.publish(&source, &MetadataFrame::keep_alive(SystemTime::now()));
            }
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            shared.sessions.lock().report(&shared.rtcp, "vigil");
        }
    }
}

/// The events a source's metadata configuration asks for (SetMetadataConfiguration's
/// `Events`), into the streams playing it, each in a document of its own.
async fn forward_events(shared: Arc<Shared>) {
    let mut events = shared.device.events().stream_events();
    loop {
        let message = match events.recv().await {
            Ok(message) => message,
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                tracing::warn!(lost, "metadata streams missed events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let playing = shared.sessions.lock().playing_sources();
        for source in playing {
            let Some(expression) = shared.device.metadata_settings(&source).events else {
                continue;
            };
            let filter = if expression.is_empty() {
                TopicFilter::all()
            } else {
                match TopicFilter::parse(&expression) {
                    Ok(filter) => filter,
                    Err(_) => continue,
                }
            };
            let topic = crate::events::render(&message, message.property, None).topic;
            if filter.matches(&topic) && concerns(&message, &source) {
                let frame = MetadataFrame {
                    utc_time: Some(message.time),
                    objects: Vec::new(),
                    events: vec![message.as_ref().clone()],
                };
                shared.publish(&source, &frame);
            }
        }
    }
}

/// Whether an event is about `source`: it names it (or its video source configuration), or
/// names no video source at all (the device's own events).
fn concerns(message: &crate::device::EventMessage, source: &str) -> bool {
    const NAMING: [&str; 4] = [
        "VideoSource",
        "Source",
        "VideoSourceToken",
        "VideoSourceConfigurationToken",
    ];
    let named: Vec<&str> = message
        .source
        .iter()
        .filter(|(name, _)| NAMING.contains(&name.as_str()))
        .map(|(_, value)| value.as_str())
        .collect();
    named.is_empty()
        || named
            .iter()
            .any(|v| *v == source || v.strip_prefix("vsc_") == Some(source))
}

/// RTCP from UDP clients (receiver reports) counts as their keep-alive.
async fn receive_rtcp(shared: Arc<Shared>) {
    let mut buffer = [0u8; 1_500];
    loop {
        match shared.rtcp.recv_from(&mut buffer).await {
            Ok((_, from)) => shared.sessions.lock().heard_from(from),
            Err(error) => {
                tracing::debug!(%error, "RTCP receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn udp_pair(ip: IpAddr, rtp_port: u16) -> Result<(UdpSocket, UdpSocket), RtspError> {
    let rtcp_port = if rtp_port == 0 {
        0
    } else {
        rtp_port.saturating_add(1)
    };
    let bind = |port: u16| async move {
        let address = SocketAddr::new(ip, port);
        UdpSocket::bind(address)
            .await
            .map_err(|source| bind_error("RTP/RTCP (UDP)", address, source))
    };
    Ok((bind(rtp_port).await?, bind(rtcp_port).await?))
}

fn bind_error(what: &'static str, address: SocketAddr, source: std::io::Error) -> RtspError {
    RtspError::Bind {
        what,
        address,
        source,
    }
}

fn port_of(socket: &UdpSocket) -> u16 {
    socket.local_addr().map_or(0, |a| a.port())
}
