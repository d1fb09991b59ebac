//! The RTSP sessions of the server: how each receives RTP, whether it plays, when it was
//! last heard of; delivery of a document's packets to every playing session of a source.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::rtp::RtpSender;

/// Where a session's packets go.
#[derive(Debug)]
pub enum Delivery {
    /// RTP and RTCP datagrams to the client's ports at the RTSP connection's own address.
    Udp {
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    },
    /// `$`-framed on the RTSP connection that set the session up.
    Interleaved {
        channel: u8,
        out: mpsc::Sender<Vec<u8>>,
    },
}

#[derive(Debug)]
pub struct Session {
    /// The RTSP connection that set it up.
    pub connection: u64,
    pub user: String,
    pub source: String,
    pub delivery: Delivery,
    pub playing: bool,
    pub last_seen: Instant,
    pub sender: RtpSender,
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
            if matches!(session.delivery, Delivery::Udp { rtcp: Some(a), rtp } if a == from || rtp == from)
            {
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
        self.by_id.retain(|_, session| {
            session.connection != connection
                || !matches!(session.delivery, Delivery::Interleaved { .. })
        });
    }

    /// Removes the sessions not heard of for `timeout`, and the interleaved sessions of
    /// closed connections; returns how many went.
    pub fn expire(&mut self, timeout: Duration) -> usize {
        let before = self.by_id.len();
        self.by_id.retain(|id, session| {
            let keep = session.last_seen.elapsed() < timeout
                && !matches!(&session.delivery, Delivery::Interleaved { out, .. } if out.is_closed());
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

    /// Sends one document to every playing session of `source`; returns how many got it.
    pub fn deliver(&mut self, source: &str, document: &[u8], udp: &UdpSocket) -> usize {
        let mut reached = 0;
        for session in self
            .by_id
            .values_mut()
            .filter(|s| s.playing && s.source == source)
        {
            let packets = session.sender.packetize(document);
            if send(&session.delivery, packets, udp, false) {
                reached += 1;
            }
        }
        reached
    }

    /// An RTCP sender report to every playing session.
    pub fn report(&self, rtcp: &UdpSocket, cname: &str) {
        for session in self.by_id.values().filter(|s| s.playing) {
            let report = session.sender.sender_report(cname);
            send(&session.delivery, vec![report], rtcp, true);
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
        Delivery::Interleaved { channel, out, .. } => {
            let channel = if rtcp {
                channel.wrapping_add(1)
            } else {
                *channel
            };
            let mut framed = Vec::new();
            for packet in packets {
                framed.push(b'$');
                framed.push(channel);
                framed.extend_from_slice(&(packet.len() as u16).to_be_bytes());
                framed.extend_from_slice(&packet);
            }
            out.try_send(framed).is_ok()
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
            delivery,
            playing: true,
            last_seen: Instant::now(),
            sender: RtpSender::new(1, 0, 0),
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
        let (out, queue) = mpsc::channel(4);
        sessions
            .insert(session(7, Delivery::Interleaved { channel: 0, out }), 10)
            .unwrap();
        sessions.insert(session(7, udp(5000)), 10).unwrap();
        sessions.close_connection(7);
        assert_eq!(sessions.len(), 1, "its UDP session stays");
        let (out, queue2) = mpsc::channel(4);
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
}
