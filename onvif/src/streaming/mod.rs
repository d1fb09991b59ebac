//! Vigil's own RTSP server for the ONVIF metadata stream (Profile M) and the camera's video
//! relayed: two mounts per video source, `rtsp://HOST:PORT/onvif/metadata/<source token>`
//! carrying one `vnd.onvif.metadata` RTP track, and `.../onvif/media/<source token>` carrying
//! the camera's video (track1, as the camera sent it) and the same metadata (track2), over
//! UDP, interleaved in the RTSP connection, or in an RTSP-over-HTTP tunnel on the same port,
//! behind Digest authentication with the ONVIF users. See `DESIGN.md` beside this file.
//!
//! The product starts an [`RtspServer`] with its [`Device`], then calls
//! [`RtspServer::publish`] with a [`MetadataFrame`] per analysed frame of a source; a source
//! that publishes nothing for a second gets an empty frame so clients see the stream alive.
//! For the video, it calls [`RtspServer::set_video_format`] at each camera connection and
//! [`RtspServer::publish_video`] with every demuxed packet.

mod connection;
mod framing;
pub mod metadata;
mod methods;
pub mod rtp;
mod sessions;
mod tunnel;
pub mod video;

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
pub use video::{VideoCodec, VideoError, VideoFormat, VideoPacket};

/// Where metadata mounts live: `MOUNT_PREFIX` + source token.
pub const MOUNT_PREFIX: &str = "/onvif/metadata/";
/// Where the mounts of video and metadata live: `MEDIA_PREFIX` + source token.
pub const MEDIA_PREFIX: &str = "/onvif/media/";
/// The control name of a metadata mount's one track, and of a media mount's video track.
pub const TRACK: &str = "track1";
/// The control name of a media mount's metadata track.
pub const METADATA_TRACK: &str = "track2";

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
    /// Each source's video, once the product said what it is.
    pub video: Mutex<HashMap<String, SourceVideo>>,
}

/// A source's video: its stream (framing, parameter sets) and its clock.
pub(crate) struct SourceVideo {
    pub stream: video::VideoStream,
    pub clock: MediaClock,
}

/// A source's 90 kHz media clock, kept going across camera reconnections (each restarts
/// the camera's timestamps) so clients see one stream: packets' times are shifted onto it.
#[derive(Debug, Default)]
pub(crate) struct MediaClock {
    offset: i64,
    /// The latest time handed out, and when.
    last: Option<(i64, Instant)>,
    /// The next packet starts a new connection's timeline.
    restart: bool,
}

impl MediaClock {
    /// Reordering (B-frames) moves back a little; more than this is a new timeline.
    const MAX_BACK: i64 = 5 * 90_000;
    const MAX_FORWARD: i64 = 10 * 90_000;
    /// The step put between two timelines (a frame at 30 fps).
    const GAP: i64 = 3_000;

    /// The packet's time on the clock.
    fn place(&mut self, pts: i64) -> i64 {
        let mut ticks = pts.wrapping_add(self.offset);
        if let Some((last, at)) = self.last {
            let step = ticks.wrapping_sub(last);
            if self.restart || !(-Self::MAX_BACK..=Self::MAX_FORWARD).contains(&step) {
                // The new timeline goes on from where the clock is now, as `now` says.
                let elapsed =
                    (at.elapsed().as_micros() * u128::from(rtp::CLOCK_RATE) / 1_000_000) as i64;
                ticks = last + elapsed.max(Self::GAP);
                self.offset = ticks.wrapping_sub(pts);
            }
        }
        self.restart = false;
        if self.last.is_none_or(|(last, _)| ticks > last) {
            self.last = Some((ticks, Instant::now()));
        }
        ticks
    }

    /// The clock now: the latest time plus what elapsed since.
    pub fn now(&self) -> Option<i64> {
        self.last.map(|(ticks, at)| {
            ticks + (at.elapsed().as_micros() * u128::from(rtp::CLOCK_RATE) / 1_000_000) as i64
        })
    }
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
        self.device.clear_video_relays();
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
            video: Mutex::new(HashMap::new()),
        });
        let tasks = vec![
            tokio::spawn(connection::accept(shared.clone(), listener)),
            tokio::spawn(keep_alive(shared.clone())),
            tokio::spawn(receive_rtcp(shared.clone())),
            tokio::spawn(forward_events(shared.clone())),
        ];
        tracing::info!(address = %local, "RTSP server (metadata, video relay) listening");
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

    /// What `source_token`'s video is from now on (at each camera connection), or `None`
    /// when it cannot be relayed (another codec, or malformed extradata: the error says).
    /// GetStreamUri hands out the media mount unless the source's video is known not to be
    /// relayable.
    pub fn set_video_format(
        &self,
        source_token: &str,
        format: Option<VideoFormat>,
    ) -> Result<(), VideoError> {
        self.shared.set_video_format(source_token, format)
    }

    /// Relays one demuxed packet (an access unit) of `source_token`'s video to the sessions
    /// playing it; returns how many it reached. Sync and cheap: without such sessions it
    /// looks at nothing. A malformed packet is refused with its reason, nothing sent.
    pub fn publish_video(
        &self,
        source_token: &str,
        packet: &VideoPacket<'_>,
    ) -> Result<usize, VideoError> {
        self.shared.publish_video(source_token, packet)
    }

    /// A handle for the thread that feeds a source's video: what [`Self::set_video_format`]
    /// and [`Self::publish_video`] do, without keeping the server running (once it stopped,
    /// they do nothing).
    pub fn video_publisher(&self) -> VideoPublisher {
        VideoPublisher {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Sessions playing `source_token`'s video now.
    pub fn playing_video_sessions(&self, source_token: &str) -> usize {
        self.shared.sessions.lock().playing_video(source_token)
    }

    /// Sessions currently set up (playing or not).
    pub fn session_count(&self) -> usize {
        self.shared.sessions.lock().len()
    }

    /// Sessions playing `source_token` now (a product may skip building documents without).
    pub fn playing_sessions(&self, source_token: &str) -> usize {
        self.shared.sessions.lock().playing(source_token)
    }

    /// The path of a source's metadata mount.
    pub fn mount_path(source_token: &str) -> String {
        format!("{MOUNT_PREFIX}{source_token}")
    }

    /// The path of a source's mount of video and metadata.
    pub fn media_path(source_token: &str) -> String {
        format!("{MEDIA_PREFIX}{source_token}")
    }
}

/// Feeds a source's video to the server while it runs (see [`RtspServer::video_publisher`]).
#[derive(Clone)]
pub struct VideoPublisher {
    shared: std::sync::Weak<Shared>,
}

impl VideoPublisher {
    /// As [`RtspServer::set_video_format`]; nothing once the server stopped.
    pub fn set_video_format(
        &self,
        source_token: &str,
        format: Option<VideoFormat>,
    ) -> Result<(), VideoError> {
        match self.shared.upgrade() {
            Some(shared) => shared.set_video_format(source_token, format),
            None => Ok(()),
        }
    }

    /// As [`RtspServer::publish_video`]; 0 once the server stopped.
    pub fn publish_video(
        &self,
        source_token: &str,
        packet: &VideoPacket<'_>,
    ) -> Result<usize, VideoError> {
        match self.shared.upgrade() {
            Some(shared) => shared.publish_video(source_token, packet),
            None => Ok(0),
        }
    }
}

impl Shared {
    fn set_video_format(
        &self,
        source: &str,
        format: Option<VideoFormat>,
    ) -> Result<(), VideoError> {
        let stream = format.map(video::VideoStream::new).transpose();
        let relayable = matches!(stream, Ok(Some(_)));
        self.device.set_video_relayed(source, relayable);
        let mut video = self.video.lock();
        match stream {
            Ok(Some(stream)) => {
                tracing::info!(source, codec = ?stream.format.codec, width = stream.format.width,
                    height = stream.format.height, "video relay format");
                let clock = match video.remove(source) {
                    Some(old) => MediaClock {
                        restart: true,
                        ..old.clock
                    },
                    None => MediaClock::default(),
                };
                video.insert(source.to_string(), SourceVideo { stream, clock });
                Ok(())
            }
            Ok(None) => {
                video.remove(source);
                Ok(())
            }
            Err(error) => {
                video.remove(source);
                Err(error)
            }
        }
    }

    fn publish_video(&self, source: &str, packet: &VideoPacket<'_>) -> Result<usize, VideoError> {
        if self.sessions.lock().playing_video(source) == 0 {
            return Ok(0);
        }
        let (unit, ticks) = {
            let mut video = self.video.lock();
            let Some(state) = video.get_mut(source) else {
                return Ok(0);
            };
            let unit = state.stream.access_unit(packet)?;
            (unit, state.clock.place(packet.pts_90k))
        };
        Ok(self
            .sessions
            .lock()
            .deliver_video(source, &unit, ticks, &self.rtp))
    }

    /// A source's video clock now, if it has had video.
    pub(crate) fn video_now(&self, source: &str) -> Option<i64> {
        self.video.lock().get(source).and_then(|v| v.clock.now())
    }

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
            let clocks: HashMap<String, i64> = shared
                .video
                .lock()
                .iter()
                .filter_map(|(source, v)| Some((source.clone(), v.clock.now()?)))
                .collect();
            shared
                .sessions
                .lock()
                .report(&shared.rtcp, "vigil", |source| clocks.get(source).copied());
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
