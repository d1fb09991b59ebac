//! RTSP over HTTP (the QuickTime tunnel, which GStreamer's `rtsph://` and most VMSs speak):
//! a client opens `GET <mount>` with an `x-sessioncookie` and reads RTSP responses and
//! interleaved RTP from it, and sends its RTSP requests base64-encoded in the body of a
//! `POST` with the same cookie on another connection. The tunnel itself opens nothing: each
//! RTSP request inside is authenticated as on a plain connection.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;

use super::framing::FramingError;
use super::sessions::Outbox;
use super::Limits;

/// How a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Rtsp,
    /// The tunnel's GET (server to client).
    Get,
    /// The tunnel's POST (client to server).
    Post,
}

/// What the first bytes say, `None` while too few have come.
pub fn opening(buffer: &[u8]) -> Option<Opening> {
    for (prefix, kind) in [(&b"GET "[..], Opening::Get), (b"POST ", Opening::Post)] {
        let n = prefix.len().min(buffer.len());
        if buffer[..n] == prefix[..n] {
            return (buffer.len() >= prefix.len()).then_some(kind);
        }
    }
    (!buffer.is_empty()).then_some(Opening::Rtsp)
}

/// The cookie of a complete tunnel request head, and the head's length; `None` while more
/// bytes are needed.
pub fn cookie(buffer: &[u8], limits: &Limits) -> Result<Option<(String, usize)>, FramingError> {
    let window = &buffer[..buffer.len().min(limits.max_head_bytes)];
    let Some(end) = window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
    else {
        return if buffer.len() >= limits.max_head_bytes {
            Err(FramingError::HeadTooLarge(limits.max_head_bytes))
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| FramingError::Malformed)?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    if !(request_line.ends_with(" HTTP/1.0") || request_line.ends_with(" HTTP/1.1")) {
        return Err(FramingError::Malformed);
    }
    let headers: Vec<(&str, &str)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once(':').map(|(n, v)| (n.trim(), v.trim())))
        .collect::<Option<_>>()
        .ok_or(FramingError::Malformed)?;
    if headers.len() > limits.max_headers {
        return Err(FramingError::TooManyHeaders(limits.max_headers));
    }
    let cookie = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-sessioncookie"))
        .map(|(_, v)| *v)
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(FramingError::Malformed)?;
    Ok(Some((cookie.to_string(), end)))
}

/// The GET's answer: from here on the connection carries RTSP.
pub const GET_ANSWER: &[u8] = b"HTTP/1.0 200 OK\r\nServer: Vigil\r\nConnection: close\r\n\
Cache-Control: no-store\r\nPragma: no-cache\r\nContent-Type: application/x-rtsp-tunnelled\r\n\r\n";

/// The server-to-client half of a tunnel, as a POST finds it.
#[derive(Debug, Clone)]
pub struct Tunnel {
    pub connection: u64,
    pub peer: IpAddr,
    pub out: Outbox,
}

/// Open tunnels by cookie.
#[derive(Debug, Default)]
pub struct Tunnels {
    by_cookie: HashMap<String, Tunnel>,
}

impl Tunnels {
    /// Registers a GET; a cookie already in use is refused.
    pub fn open(&mut self, cookie: &str, tunnel: Tunnel) -> bool {
        if self.by_cookie.contains_key(cookie) {
            return false;
        }
        self.by_cookie.insert(cookie.to_string(), tunnel);
        true
    }

    /// The GET half for a POST from `peer`: only the address that opened it may use it.
    pub fn find(&self, cookie: &str, peer: IpAddr) -> Option<Tunnel> {
        self.by_cookie
            .get(cookie)
            .filter(|t| t.peer == peer)
            .cloned()
    }

    pub fn close(&mut self, cookie: &str, connection: u64) {
        if self
            .by_cookie
            .get(cookie)
            .is_some_and(|t| t.connection == connection)
        {
            self.by_cookie.remove(cookie);
        }
    }
}

/// Decodes a POST body's base64 as it arrives, whatever the chunking.
#[derive(Debug, Default)]
pub struct Base64Stream {
    pending: Vec<u8>,
}

impl Base64Stream {
    /// Appends what `bytes` completes to `decoded`.
    pub fn feed(&mut self, bytes: &[u8], decoded: &mut Vec<u8>) -> Result<(), FramingError> {
        self.pending
            .extend(bytes.iter().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.pending.len() / 4 * 4;
        // Quantum by quantum: clients encode each request apart, so padding may come
        // mid-stream.
        for quantum in self.pending[..whole].chunks(4) {
            let text = base64::engine::general_purpose::STANDARD
                .decode(quantum)
                .map_err(|_| FramingError::Malformed)?;
            decoded.extend_from_slice(&text);
        }
        self.pending.drain(..whole);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_openings_apart() {
        assert_eq!(opening(b"GE"), None);
        assert_eq!(opening(b"GET /x"), Some(Opening::Get));
        assert_eq!(opening(b"POST "), Some(Opening::Post));
        assert_eq!(opening(b"OPTIONS"), Some(Opening::Rtsp));
        assert_eq!(opening(b"$"), Some(Opening::Rtsp));
        assert_eq!(opening(b""), None);
    }

    #[test]
    fn reads_the_cookie_within_limits() {
        let limits = Limits::default();
        let get = b"GET /onvif/metadata/door HTTP/1.0\r\nx-sessioncookie: abc123\r\nAccept: application/x-rtsp-tunnelled\r\n\r\nrest";
        assert_eq!(
            cookie(get, &limits).unwrap(),
            Some(("abc123".into(), get.len() - 4))
        );
        assert_eq!(cookie(&get[..20], &limits).unwrap(), None);
        let without = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            cookie(without, &limits).unwrap_err(),
            FramingError::Malformed
        );
        let rtsp = b"GET / RTSP/1.0\r\nx-sessioncookie: a\r\n\r\n";
        assert_eq!(cookie(rtsp, &limits).unwrap_err(), FramingError::Malformed);
    }

    #[test]
    fn decodes_base64_across_chunks() {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(b"OPTIONS * RTSP/1.0\r\n\r\n");
        let mut stream = Base64Stream::default();
        let mut decoded = Vec::new();
        let twice = format!("{encoded}{encoded}");
        for chunk in twice.as_bytes().chunks(3) {
            stream.feed(chunk, &mut decoded).unwrap();
        }
        assert_eq!(decoded, b"OPTIONS * RTSP/1.0\r\n\r\n".repeat(2));
        assert!(stream.feed(b"!!!!", &mut decoded).is_err());
    }

    #[test]
    fn only_the_opening_address_posts_into_a_tunnel() {
        let mut tunnels = Tunnels::default();
        let (out, _queue) = Outbox::new(1);
        let home: IpAddr = "127.0.0.1".parse().unwrap();
        let tunnel = Tunnel {
            connection: 1,
            peer: home,
            out,
        };
        assert!(tunnels.open("c", tunnel.clone()));
        assert!(!tunnels.open("c", tunnel));
        assert!(tunnels.find("c", home).is_some());
        assert!(tunnels.find("c", "127.0.0.2".parse().unwrap()).is_none());
        tunnels.close("c", 2);
        assert!(tunnels.find("c", home).is_some());
        tunnels.close("c", 1);
        assert!(tunnels.find("c", home).is_none());
    }
}
