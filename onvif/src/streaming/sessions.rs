//! The RTSP sessions of the server: their tracks and how each receives RTP, whether they
//! play, when they were last heard of; delivery of metadata documents and video access
//! units to every playing session of a source.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::rtp::RtpSender;
use super::video::{AccessUnit, VideoCodec};

/// Bytes of interleaved media a connection's writer may have queued: beyond, a client that
/// cannot keep up loses packets (video until its next keyframe), the server no memory.
pub const MEDIA_BUDGET: usize = 4 * 1024 * 1024;

/// What a connection's writer sends, in order: responses and interleaved packets, with the
/// bytes queued counted so media can be refused before memory grows.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// The writer's side of an [`Outbox`].
pub struct OutboxReader {
    rx: mpsc::Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// An outbox of at most `messages` messages.
    pub fn new(messages: usize) -> (Self, OutboxReader) {
        let (tx, rx) = mpsc::channel(messages);
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Self {
                tx,
                queued: queued.clone(),
            },
            OutboxReader { rx, queued },
        )
    }

    /// Queues a response, waiting for room; false once the writer is gone.
    pub async fn send(&self, bytes: Vec<u8>) -> bool {
        let n = bytes.len();
        self.queued.fetch_add(n, Ordering::Relaxed);
        if self.tx.send(bytes).await.is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Queues media if there is room (messages and [`MEDIA_BUDGET`]); never waits.
    pub fn try_send(&self, bytes: Vec<u8>) -> bool {
        let n = bytes.len();
        if self.queued.fetch_add(n, Ordering::Relaxed) + n > MEDIA_BUDGET {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        if self.tx.try_send(bytes).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl OutboxReader {
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        let bytes = self.rx.recv().await?;
        self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
        Some(bytes)
    }
}

/// Where a track's packets go.
#[derive(Debug)]
pub enum Delivery {
    /// RTP and RTCP datagrams to the client's ports at the RTSP connection's own address.
    Udp {
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    },
    /// `$`-framed on the RTSP connection that set the session up.
    Interleaved { channel: u8, out: Outbox },
}

/// The mount a session was set up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// `/onvif/metadata/<source>`: the metadata track alone.
    Metadata,
    /// `/onvif/media/<source>`: the video track and the metadata track.
    Media,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video(VideoCodec),
    Metadata,
}

/// One set-up track of a session.
#[derive(Debug)]
pub struct Track {
    pub kind: TrackKind,
    /// Its number on the mount (`track1`, `track2`).
    pub number: u8,
    pub delivery: Delivery,
    pub sender: RtpSender,
    /// Video only: nothing is sent until a keyframe (at the start, and after a loss).
    pub waiting_for_keyframe: bool,
}

#[derive(Debug)]
pub struct Session {
    /// The RTSP connection that set it up.
    pub connection: u64,
    pub user: String,
    pub source: String,
    pub mount: MountKind,
    pub tracks: Vec<Track>,
    pub playing: bool,
    pub last_seen: Instant,
}

impl Session {
    fn interleaved(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| matches!(t.delivery, Delivery::Interleaved { .. }))
    }

    fn closed(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| matches!(&t.delivery, Delivery::Interleaved { out, .. } if out.is_closed()))
    }

    pub fn track(&self, number: u8) -> Option<&Track> {
        self.tracks.iter().find(|t| t.number == number)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no such session")]
    NotFound,
    #[error("the session limit ({0}) is reached")]
    Full(usize),
}

/// The table of sessions, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn insert(&mut self, session: Session, max: usize) -> Result<String, SessionError> {
        if self.by_id.len() >= max {
            return Err(SessionError::Full(max));
        }
        let mut id = random_hex(8);
        while self.by_id.contains_key(&id) {
            id.push_str(&random_hex(1));
        }
        self.by_id.insert(id.clone(), session);
        Ok(id)
    }

    /// The session `id` of `user`, marked as heard of now.
    pub fn touch(&mut self, id: &str, user: &str) -> Result<&mut Session, SessionError> {
        match self.by_id.get_mut(id) {
            Some(session) if session.user == user => {
                session.last_seen = Instant::now();
                Ok(session)
            }
            _ => Err(SessionError::NotFound),
        }
    }

    pub fn remove(&mut self, id: &str, user: &str) -> Result<(), SessionError> {
        self.touch(id, user)?;
        self.by_id.remove(id);
        Ok(())
    }

    /// An RTCP packet from `from` keeps the UDP session it belongs to alive.
    pub fn heard_from(&mut self, from: SocketAddr) {
        for session in self.by_id.values_mut() {
            let theirs = session.tracks.iter().any(|t| {
                matches!(t.delivery, Delivery::Udp { rtcp: Some(a), rtp } if a == from || rtp == from)
            });
            if theirs {
                session.last_seen = Instant::now();
            }
        }
    }

    /// Any request or interleaved RTCP on a connection keeps the sessions it set up alive
    /// (ONVIF Streaming: every request but TEARDOWN is a keep-alive).
    pub fn heard_on(&mut self, connection: u64) {
        for session in self
            .by_id
            .values_mut()
            .filter(|s| s.connection == connection)
        {
            session.last_seen = Instant::now();
        }
    }

    pub fn on_connection(&self, connection: u64) -> bool {
        self.by_id.values().any(|s| s.connection == connection)
    }

    /// Removes the interleaved sessions of a closed connection.
    pub fn close_connection(&mut self, connection: u64) {
        self.by_id
            .retain(|_, session| session.connection != connection || !session.interleaved());
    }

    /// Removes the sessions not heard of for `timeout`, and the interleaved sessions of
    /// closed connections; returns how many went.
    pub fn expire(&mut self, timeout: Duration) -> usize {
        let before = self.by_id.len();
        self.by_id.retain(|id, session| {
            let keep = session.last_seen.elapsed() < timeout && !session.closed();
            if !keep {
                tracing::info!(session = %id, source = %session.source, "RTSP session expired");
            }
            keep
        });
        before - self.by_id.len()
    }

    pub fn playing(&self, source: &str) -> usize {
        self.by_id
            .values()
            .filter(|s| s.playing && s.source == source)
            .count()
    }

    /// Playing sessions of `source` with a video track.
    pub fn playing_video(&self, source: &str) -> usize {
        self.by_id
            .values()
            .filter(|s| s.playing && s.source == source)
            .filter(|s| {
                s.tracks
                    .iter()
                    .any(|t| matches!(t.kind, TrackKind::Video(_)))
            })
            .count()
    }

    /// Sources with at least one playing session.
    pub fn playing_sources(&self) -> Vec<String> {
        let mut sources: Vec<String> = self
            .by_id
            .values()
            .filter(|s| s.playing)
            .map(|s| s.source.clone())
            .collect();
        sources.sort();
        sources.dedup();
        sources
    }

    fn playing_tracks<'a>(
        &'a mut self,
        source: &'a str,
        wanted: impl Fn(TrackKind) -> bool + 'a,
    ) -> impl Iterator<Item = &'a mut Track> + 'a {
        self.by_id
            .values_mut()
            .filter(move |s| s.playing && s.source == source)
            .flat_map(|s| s.tracks.iter_mut())
            .filter(move |t| wanted(t.kind))
    }

    /// Sends one document to the metadata track of every playing session of `source`;
    /// returns how many got it.
    pub fn deliver(&mut self, source: &str, document: &[u8], udp: &UdpSocket) -> usize {
        let mut reached = 0;
        for track in self.playing_tracks(source, |k| k == TrackKind::Metadata) {
            let packets = track.sender.packetize(document);
            if send(&track.delivery, packets, udp, false) {
                reached += 1;
            }
        }
        reached
    }

    /// Sends one access unit, stamped `ticks` on the source's 90 kHz clock, to the video
    /// track of every playing session of `source` that can start with it (a keyframe, or
    /// one that follows what it got); returns how many got it.
    pub fn deliver_video(
        &mut self,
        source: &str,
        unit: &AccessUnit,
        ticks: i64,
        udp: &UdpSocket,
    ) -> usize {
        let mut reached = 0;
        let codec = unit.codec;
        for track in self.playing_tracks(source, |k| k == TrackKind::Video(codec)) {
            if track.waiting_for_keyframe && !unit.keyframe {
                continue;
            }
            let timestamp = track.sender.timestamp_at(ticks);
            let packets = track.sender.packets(&unit.payloads, timestamp);
            let sent = send(&track.delivery, packets, udp, false);
            // A lost piece spoils every frame up to the next keyframe: wait for it.
            track.waiting_for_keyframe = !sent;
            reached += usize::from(sent);
        }
        reached
    }

    /// An RTCP sender report for every track of every playing session; `video_now` gives
    /// a source's video clock now (90 kHz ticks), if it has one.
    pub fn report(&self, rtcp: &UdpSocket, cname: &str, video_now: impl Fn(&str) -> Option<i64>) {
        for session in self.by_id.values().filter(|s| s.playing) {
            for track in &session.tracks {
                let now = match track.kind {
                    TrackKind::Metadata => Some(track.sender.timestamp_now()),
                    TrackKind::Video(_) => {
                        video_now(&session.source).map(|t| track.sender.timestamp_at(t))
                    }
                };
                if let Some(now) = now {
                    let report = track.sender.sender_report(cname, now);
                    send(&track.delivery, vec![report], rtcp, true);
                }
            }
        }
    }
}

/// Sends without waiting: a client that cannot keep up loses packets, the server no memory.
fn send(delivery: &Delivery, packets: Vec<Vec<u8>>, socket: &UdpSocket, rtcp: bool) -> bool {
    match delivery {
        Delivery::Udp { rtp, rtcp: rtcp_to } => {
            let Some(to) = (if rtcp { *rtcp_to } else { Some(*rtp) }) else {
                return false;
            };
            packets.iter().all(|p| socket.try_send_to(p, to).is_ok())
        }
        Delivery::Interleaved { channel, out } => {
            let channel = if rtcp {
                channel.wrapping_add(1)
            } else {
                *channel
            };
            let size = packets.iter().map(|p| p.len() + 4).sum();
            let mut framed = Vec::with_capacity(size);
            for packet in packets {
                framed.push(b'$');
                framed.push(channel);
                framed.extend_from_slice(&(packet.len() as u16).to_be_bytes());
                framed.extend_from_slice(&packet);
            }
            out.try_send(framed)
        }
    }
}

/// `bytes` random bytes as hex (session ids, SSRCs).
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // A failing kernel generator leaves zeros: ids then still differ (see `insert`), and
    // session ids are bound to their user anyway.
    let _ = openssl::rand::rand_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_u32() -> u32 {
    let mut buffer = [0u8; 4];
    let _ = openssl::rand::rand_bytes(&mut buffer);
    u32::from_be_bytes(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(connection: u64, delivery: Delivery) -> Session {
        Session {
            connection,
            user: "viewer".into(),
            source: "door".into(),
            mount: MountKind::Metadata,
            tracks: vec![Track {
                kind: TrackKind::Metadata,
                number: 1,
                delivery,
                sender: RtpSender::new(1, 0, 0),
                waiting_for_keyframe: false,
            }],
            playing: true,
            last_seen: Instant::now(),
        }
    }

    fn udp(port: u16) -> Delivery {
        Delivery::Udp {
            rtp: SocketAddr::from(([127, 0, 0, 1], port)),
            rtcp: Some(SocketAddr::from(([127, 0, 0, 1], port + 1))),
        }
    }

    #[test]
    fn sessions_belong_to_their_user_and_are_capped() {
        let mut sessions = Sessions::default();
        let id = sessions.insert(session(1, udp(5000)), 2).unwrap();
        sessions.insert(session(1, udp(5002)), 2).unwrap();
        assert_eq!(
            sessions.insert(session(1, udp(5004)), 2),
            Err(SessionError::Full(2))
        );
        assert!(sessions.touch(&id, "someone else").is_err());
        assert_eq!(
            sessions.remove(&id, "someone else"),
            Err(SessionError::NotFound)
        );
        assert!(sessions.remove(&id, "viewer").is_ok());
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn silent_sessions_expire_and_rtcp_or_requests_keep_them() {
        let mut sessions = Sessions::default();
        let old = Instant::now() - Duration::from_secs(120);
        for (connection, port) in [(1, 5000), (2, 5002), (3, 5004)] {
            let mut s = session(connection, udp(port));
            s.last_seen = old;
            sessions.insert(s, 10).unwrap();
        }
        sessions.heard_from(SocketAddr::from(([127, 0, 0, 1], 5001)));
        sessions.heard_on(2);
        assert_eq!(sessions.expire(Duration::from_secs(60)), 1);
        assert!(sessions.on_connection(1) && sessions.on_connection(2));
        assert!(!sessions.on_connection(3));
    }

    #[test]
    fn interleaved_sessions_end_with_their_connection() {
        let mut sessions = Sessions::default();
        let (out, queue) = Outbox::new(4);
        sessions
            .insert(session(7, Delivery::Interleaved { channel: 0, out }), 10)
            .unwrap();
        sessions.insert(session(7, udp(5000)), 10).unwrap();
        sessions.close_connection(7);
        assert_eq!(sessions.len(), 1, "its UDP session stays");
        let (out, queue2) = Outbox::new(4);
        sessions
            .insert(session(8, Delivery::Interleaved { channel: 0, out }), 10)
            .unwrap();
        drop(queue);
        drop(queue2);
        assert_eq!(
            sessions.expire(Duration::from_secs(60)),
            1,
            "a closed writer ends it"
        );
    }

    fn video_session(out: Outbox) -> Session {
        Session {
            mount: MountKind::Media,
            tracks: vec![Track {
                kind: TrackKind::Video(VideoCodec::H264),
                number: 1,
                delivery: Delivery::Interleaved { channel: 0, out },
                sender: RtpSender::with_payload_type(96, 9, 100, 1_000),
                waiting_for_keyframe: true,
            }],
            ..session(1, udp(5000))
        }
    }

    fn unit(keyframe: bool, bytes: usize) -> AccessUnit {
        AccessUnit {
            payloads: vec![vec![0x65; bytes.min(1_400)]; bytes.div_ceil(1_400)],
            keyframe,
            codec: VideoCodec::H264,
        }
    }

    #[tokio::test]
    async fn video_starts_at_a_keyframe_and_a_slow_client_loses_frames_not_memory() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (out, mut reader) = Outbox::new(256);
        let mut sessions = Sessions::default();
        sessions.insert(video_session(out), 10).unwrap();
        assert_eq!(sessions.deliver_video("door", &unit(false, 10), 0, &udp), 0);
        assert_eq!(
            sessions.deliver_video("door", &unit(true, 3_000), 3_000, &udp),
            1
        );
        let keyframe = reader.recv().await.unwrap();
        // Three packets, `$`-framed, the timestamp the base plus the ticks, the last marked.
        assert_eq!(keyframe[0], b'$');
        let first = &keyframe[4..];
        assert_eq!(u32::from_be_bytes(first[4..8].try_into().unwrap()), 4_000);
        assert_eq!(u16::from_be_bytes(first[2..4].try_into().unwrap()), 100);
        assert_eq!(
            sessions.deliver_video("door", &unit(false, 10), 6_000, &udp),
            1
        );
        assert!(reader.recv().await.is_some());
        // Nobody reads: the budget fills, the client loses frames until the next keyframe.
        let mut sent = 0;
        while sessions.deliver_video("door", &unit(false, 100_000), 0, &udp) == 1 {
            sent += 1;
        }
        assert!(sent * 100_000 <= MEDIA_BUDGET, "{sent} frames queued");
        while reader.rx.try_recv().is_ok() {}
        reader.queued.store(0, Ordering::Relaxed);
        assert_eq!(sessions.deliver_video("door", &unit(false, 10), 0, &udp), 0);
        assert_eq!(sessions.deliver_video("door", &unit(true, 10), 0, &udp), 1);
    }
}
