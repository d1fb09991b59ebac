//! A device with two sources and two users, its RTSP server on 127.0.0.1, and a raw RTSP
//! client for the requests real clients never send.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use onvif::auth::{MemoryUsers, User, UserLevel};
use onvif::device::{DeviceInformation, Product, TopicDescription, VideoEncoding, VideoSource};
use onvif::events::{ConsumerAllowList, EventLimits};
use onvif::streaming::{RtspConfig, RtspServer};
use onvif::{Device, DeviceConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const USER: &str = "viewer";
pub const PASSWORD: &str = "watch-it-all";
pub const REALM: &str = "vigil-test";

struct TwoCameras;

impl Product for TwoCameras {
    fn information(&self) -> DeviceInformation {
        DeviceInformation {
            manufacturer: "Test".into(),
            model: "T".into(),
            firmware_version: "1".into(),
            serial_number: "1".into(),
            hardware_id: "1".into(),
        }
    }

    fn video_sources(&self) -> Vec<VideoSource> {
        ["door", "lobby"]
            .iter()
            .map(|token| VideoSource {
                token: token.to_string(),
                name: token.to_string(),
                width: 1280,
                height: 720,
                framerate: 10.0,
                encoding: VideoEncoding::H264,
            })
            .collect()
    }

    fn snapshot(&self, _: &str) -> Option<Vec<u8>> {
        None
    }

    fn topics(&self) -> Vec<TopicDescription> {
        Vec::new()
    }

    fn reboot(&self) {}
}

pub fn device() -> Arc<Device> {
    let users = MemoryUsers::new([
        User {
            name: "admin".into(),
            password: "admin-secret".into(),
            level: UserLevel::Administrator,
        },
        User {
            name: USER.into(),
            password: PASSWORD.into(),
            level: UserLevel::User,
        },
    ]);
    let config = DeviceConfig {
        endpoint: uuid::Uuid::nil(),
        name: "rtsp test".into(),
        location: "lab".into(),
        hardware: "bench".into(),
        realm: REALM.into(),
        settings_file: None,
        discoverable: false,
        consumer_allow: ConsumerAllowList::parse(&["127.0.0.0/8".into()]).unwrap(),
        plain_http: true,
        event_limits: EventLimits::default(),
        xml_limits: onvif::xml::Limits::default(),
        min_password_chars: 3,
        http_ports: vec![1],
        https_ports: Vec::new(),
    };
    Device::new(config, Arc::new(TwoCameras), Arc::new(users)).unwrap()
}

pub async fn server(change: impl FnOnce(&mut RtspConfig)) -> (RtspServer, Arc<Device>) {
    let device = device();
    let mut config = RtspConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..RtspConfig::default()
    };
    change(&mut config);
    let server = RtspServer::start(device.clone(), config).await.unwrap();
    (server, device)
}

pub fn url(server: &RtspServer, source: &str) -> String {
    format!(
        "rtsp://{}{}",
        server.local_addr(),
        RtspServer::mount_path(source)
    )
}

/// Polls `condition` every 20 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// One RTSP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A hand-written RTSP client over one connection.
pub struct RawClient {
    pub stream: TcpStream,
    buffer: Vec<u8>,
    cseq: u32,
    /// Interleaved frames met while reading responses: (channel, data).
    pub interleaved: Vec<(u8, Vec<u8>)>,
}

impl RawClient {
    pub async fn connect(server: &RtspServer) -> Self {
        Self {
            stream: TcpStream::connect(server.local_addr()).await.unwrap(),
            buffer: Vec::new(),
            cseq: 0,
            interleaved: Vec::new(),
        }
    }

    /// Sends `method url` with `headers` (and the next CSeq) and reads the reply.
    pub async fn request(&mut self, method: &str, url: &str, headers: &[String]) -> Reply {
        self.cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        self.stream.write_all(text.as_bytes()).await.unwrap();
        self.reply().await.expect("a reply")
    }

    /// The status of a bodiless request, or `None` if the server closed the connection.
    pub async fn request_or_close(&mut self, method: &str, url: &str) -> Option<u16> {
        self.cseq += 1;
        let text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n\r\n", self.cseq);
        self.stream.write_all(text.as_bytes()).await.ok()?;
        self.reply().await.map(|r| r.status)
    }

    /// Like `request`, answering a 401's challenge with `user`'s `password` (RFC 2069).
    pub async fn authorized(
        &mut self,
        method: &str,
        url: &str,
        headers: &[String],
        user: &str,
        password: &str,
    ) -> Reply {
        let challenge = self.request(method, url, headers).await;
        assert_eq!(challenge.status, 401);
        let nonce = challenge_nonce(challenge.header("WWW-Authenticate").unwrap());
        let mut with = headers.to_vec();
        with.push(authorization(user, password, &nonce, method, url));
        self.request(method, url, &with).await
    }

    /// The next response, or `None` when the server closed the connection.
    pub async fn reply(&mut self) -> Option<Reply> {
        loop {
            if let Some(reply) = self.take_reply() {
                return Some(reply);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next interleaved frame on `channel`, within `within`.
    pub async fn frame(&mut self, channel: u8, within: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            self.take_frames();
            if let Some(at) = self.interleaved.iter().position(|(c, _)| *c == channel) {
                return Some(self.interleaved.remove(at).1);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.fill()).await {
                Ok(true) => {}
                _ => return None,
            }
        }
    }

    /// Reads more bytes; false at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    fn take_frames(&mut self) {
        while self.buffer.first() == Some(&b'$') && self.buffer.len() >= 4 {
            let length = u16::from_be_bytes([self.buffer[2], self.buffer[3]]) as usize;
            if self.buffer.len() < 4 + length {
                return;
            }
            let data = self.buffer[4..4 + length].to_vec();
            self.interleaved.push((self.buffer[1], data));
            self.buffer.drain(..4 + length);
        }
    }

    fn take_reply(&mut self) -> Option<Reply> {
        self.take_frames();
        let text = String::from_utf8_lossy(&self.buffer).to_string();
        let head_end = text.find("\r\n\r\n")? + 4;
        let mut lines = text[..head_end].split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
        if self.buffer.len() < head_end + length {
            return None;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        Some(Reply {
            status,
            headers,
            body,
        })
    }
}

pub fn challenge_nonce(challenge: &str) -> String {
    let start = challenge.find("nonce=\"").unwrap() + 7;
    let end = challenge[start..].find('"').unwrap();
    challenge[start..start + end].to_string()
}

fn md5_hex(text: &str) -> String {
    openssl::hash::hash(openssl::hash::MessageDigest::md5(), text.as_bytes())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An RFC 2069 Digest Authorization header, as GStreamer sends it.
pub fn authorization(user: &str, password: &str, nonce: &str, method: &str, uri: &str) -> String {
    let ha1 = md5_hex(&format!("{user}:{REALM}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
    )
}

/// DESCRIBE, SETUP and PLAY with the right credentials; returns the session id.
pub async fn play(client: &mut RawClient, base: &str, transport: &str) -> String {
    let describe = client
        .authorized("DESCRIBE", base, &[], USER, PASSWORD)
        .await;
    assert_eq!(describe.status, 200);
    let track = format!("{base}/track1");
    let setup = client
        .authorized(
            "SETUP",
            &track,
            &[format!("Transport: {transport}")],
            USER,
            PASSWORD,
        )
        .await;
    assert_eq!(setup.status, 200, "{setup:?}");
    let session = setup
        .header("Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let play = client
        .authorized(
            "PLAY",
            base,
            &[format!("Session: {session}")],
            USER,
            PASSWORD,
        )
        .await;
    assert_eq!(play.status, 200, "{play:?}");
    assert!(play.header("RTP-Info").unwrap().contains("seq="));
    session
}

/// A client playing `source` over interleaved TCP (channels 0-1) with the right credentials.
pub async fn playing_interleaved(server: &RtspServer, source: &str) -> RawClient {
    let mut client = RawClient::connect(server).await;
    play(
        &mut client,
        &url(server, source),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
    )
    .await;
    client
}
