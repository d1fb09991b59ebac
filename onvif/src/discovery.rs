//! WS-Discovery (2005/04, as ONVIF uses it) over UDP 3702: Hello when starting and when
//! scopes change, Bye when stopping, ProbeMatches and ResolveMatches to matching Probes
//! and Resolves, sent back to whoever asked.
//!
//! Only the configured interface addresses are used: each gets a unicast socket bound to
//! it, which also sends, and joins the multicast group on that interface. The group
//! socket is bound to the group address, so unicast traffic to other addresses of the
//! machine never reaches it. The built-in default is 127.0.0.1 alone.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::server::{Device, DEVICE_PATH};
use crate::xml::{self, escape, Element, Limits};

pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 3702;

const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
const NS_DISCOVERY: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
const NS_NETWORK: &str = "http://www.onvif.org/ver10/network/wsdl";
const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
const MATCH_RFC3986: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986";
const MATCH_STRCMP: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0";

#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Interface addresses to listen and announce on.
    pub interfaces: Vec<Ipv4Addr>,
    /// 3702 in the field; tests may move it.
    pub port: u16,
    /// The HTTP port the device service listens on, for XAddrs.
    pub http_port: u16,
    /// The HTTPS address it listens on, if any: announced on the interfaces it serves, alone
    /// while plain HTTP is off.
    pub https: Option<SocketAddr>,
}

/// Runs until `stop` turns true, then says Bye.
pub async fn run(
    device: Arc<Device>,
    config: DiscoveryConfig,
    sockets: Sockets,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let announcer = Announcer {
        device: device.clone(),
        plain_xaddrs: xaddrs(&config.interfaces, "http", config.http_port),
        secure_xaddrs: match config.https {
            // Only where it listens: a loopback-only web listener is not announced on the LAN.
            Some(https) => xaddrs(
                &config
                    .interfaces
                    .iter()
                    .copied()
                    .filter(|ip| https.ip().is_unspecified() || https.ip() == IpAddr::V4(*ip))
                    .collect::<Vec<_>>(),
                "https",
                https.port(),
            ),
            None => String::new(),
        },
        instance: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        message_number: AtomicU64::new(1),
        metadata_version: AtomicU64::new(1),
    };
    let mut settings = device.watch_settings();
    let mut was_discoverable = device.discoverable();
    if was_discoverable {
        sockets.announce(&announcer.hello()).await;
    }
    tracing::info!(interfaces = ?config.interfaces, port = config.port, "WS-Discovery running");
    let mut buffer = vec![0u8; 65_536];
    let mut answers = AnswerBudget::default();
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
            changed = settings.changed() => {
                if changed.is_err() {
                    break;
                }
                let discoverable = device.discoverable();
                announcer.metadata_version.fetch_add(1, Ordering::Relaxed);
                match (was_discoverable, discoverable) {
                    (_, true) => sockets.announce(&announcer.hello()).await,
                    (true, false) => sockets.announce(&announcer.bye()).await,
                    (false, false) => {}
                }
                was_discoverable = discoverable;
            }
            received = sockets.receive(&mut buffer) => {
                let (length, from, via) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "WS-Discovery receive failed");
                        continue;
                    }
                };
                if !device.discoverable() {
                    continue;
                }
                // WS-Discovery is link-local: a probe from beyond the interfaces' networks is
                // most likely spoofed, to make the device send its (larger) answer to a victim.
                if !sockets.on_link(from) || !answers.take() {
                    tracing::debug!(%from, "WS-Discovery probe not answered (off-link or over the rate)");
                    continue;
                }
                if let Some(answer) = announcer.answer(&buffer[..length]) {
                    if let Err(e) = sockets.unicast[via].send_to(answer.as_bytes(), from).await {
                        tracing::debug!(error = %e, %from, "WS-Discovery answer not sent");
                    }
                }
            }
        }
    }
    if was_discoverable {
        sockets.announce(&announcer.bye()).await;
    }
    Ok(())
}

/// The discovery sockets, opened before `run` so that errors show at start.
pub struct Sockets {
    group: UdpSocket,
    /// One per interface, bound to its address.
    unicast: Vec<UdpSocket>,
    interfaces: Vec<Ipv4Addr>,
    /// Each interface's network mask, to tell which one a multicast sender is on.
    masks: Vec<u32>,
    port: u16,
}

impl Sockets {
    pub fn open(config: &DiscoveryConfig) -> io::Result<Self> {
        let group = reusable_socket(SocketAddrV4::new(MULTICAST_GROUP, config.port))?;
        for interface in &config.interfaces {
            group.join_multicast_v4(&MULTICAST_GROUP, interface)?;
        }
        let unicast = config
            .interfaces
            .iter()
            .map(|interface| {
                let socket = reusable_socket(SocketAddrV4::new(*interface, config.port))?;
                socket.set_multicast_if_v4(interface)?;
                socket.set_multicast_loop_v4(true)?;
                socket.set_multicast_ttl_v4(1)?;
                UdpSocket::from_std(socket.into())
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            group: UdpSocket::from_std(group.into())?,
            unicast,
            interfaces: config.interfaces.clone(),
            masks: config.interfaces.iter().map(|i| network_mask(*i)).collect(),
            port: config.port,
        })
    }

    /// A datagram from any socket, with the index of the interface to answer through.
    async fn receive(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr, usize)> {
        let all: Vec<&UdpSocket> = std::iter::once(&self.group).chain(&self.unicast).collect();
        loop {
            let (ready, index) = select_all(all.iter().map(|s| Box::pin(s.readable()))).await;
            ready?;
            let (length, from) = match all[index].try_recv_from(buffer) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            let via = if index > 0 {
                index - 1
            } else {
                // Multicast: answer through the interface whose network the sender is on.
                match from {
                    SocketAddr::V4(v4) => {
                        let peer = u32::from(*v4.ip());
                        self.interfaces
                            .iter()
                            .zip(&self.masks)
                            .position(|(i, mask)| u32::from(*i) & mask == peer & mask)
                            .unwrap_or(0)
                    }
                    SocketAddr::V6(_) => 0,
                }
            };
            return Ok((length, from, via));
        }
    }

    /// Whether `from` is on the network of one of the interfaces discovery runs on.
    fn on_link(&self, from: SocketAddr) -> bool {
        let SocketAddr::V4(v4) = from else {
            return false;
        };
        let peer = u32::from(*v4.ip());
        self.interfaces
            .iter()
            .zip(&self.masks)
            .any(|(i, mask)| u32::from(*i) & mask == peer & mask)
    }

    async fn announce(&self, message: &str) {
        for (socket, interface) in self.unicast.iter().zip(&self.interfaces) {
            let target = SocketAddrV4::new(MULTICAST_GROUP, self.port);
            if let Err(e) = socket.send_to(message.as_bytes(), target).await {
                tracing::warn!(%interface, error = %e, "WS-Discovery announcement not sent");
            }
        }
    }
}

/// Answers per second at most, whoever asks: a flood of probes (spoofed or not) cannot turn
/// the device into a traffic source. A real network's VMSs probe a few times a minute.
const ANSWERS_PER_SECOND: u32 = 100;

#[derive(Default)]
struct AnswerBudget {
    window: Option<std::time::Instant>,
    used: u32,
}

impl AnswerBudget {
    /// Takes one answer from this second's budget, if any is left.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        if self
            .window
            .is_none_or(|start| now.duration_since(start) >= std::time::Duration::from_secs(1))
        {
            self.window = Some(now);
            self.used = 0;
        }
        if self.used >= ANSWERS_PER_SECOND {
            return false;
        }
        self.used += 1;
        true
    }
}

/// The first of several futures to finish, with its index.
async fn select_all<F: std::future::Future + Unpin>(
    futures: impl Iterator<Item = F>,
) -> (F::Output, usize) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |context| {
        for (index, future) in futures.iter_mut().enumerate() {
            if let std::task::Poll::Ready(output) = std::pin::Pin::new(future).poll(context) {
                return std::task::Poll::Ready((output, index));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The mask of the network an interface address is on (a /24 when it is not found).
fn network_mask(interface: Ipv4Addr) -> u32 {
    let prefix = crate::system::ipv4_addresses()
        .into_iter()
        .find(|(_, a, _)| *a == interface)
        .map_or(24, |(_, _, p)| p);
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn reusable_socket(address: SocketAddrV4) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(address).into())?;
    Ok(socket)
}

/// What discovery would answer to one datagram (`None`: silence), without sockets: the
/// fuzz harness's way in. Not part of the API.
#[doc(hidden)]
pub fn answer_datagram(device: Arc<Device>, datagram: &[u8]) -> Option<String> {
    Announcer {
        device,
        plain_xaddrs: format!("http://127.0.0.1:8080{DEVICE_PATH}"),
        secure_xaddrs: String::new(),
        instance: 1,
        message_number: AtomicU64::new(1),
        metadata_version: AtomicU64::new(1),
    }
    .answer(datagram)
}

/// The device service's addresses on `interfaces`, space-separated as XAddrs are.
fn xaddrs(interfaces: &[Ipv4Addr], scheme: &str, port: u16) -> String {
    interfaces
        .iter()
        .map(|ip| format!("{scheme}://{ip}:{port}{DEVICE_PATH}"))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Announcer {
    device: Arc<Device>,
    plain_xaddrs: String,
    secure_xaddrs: String,
    instance: u64,
    message_number: AtomicU64,
    metadata_version: AtomicU64,
}

impl Announcer {
    fn envelope(&self, action: &str, to: &str, relates_to: Option<&str>, body: &str) -> String {
        let number = self.message_number.fetch_add(1, Ordering::Relaxed);
        let relates = relates_to
            .map(|r| format!("<wsa:RelatesTo>{}</wsa:RelatesTo>", escape(r)))
            .unwrap_or_default();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"{NS_SOAP}\" xmlns:wsa=\"{NS_WSA}\" \
             xmlns:d=\"{NS_DISCOVERY}\" xmlns:dn=\"{NS_NETWORK}\" xmlns:tds=\"{NS_DEVICE}\"><s:Header>\
             <wsa:MessageID>urn:uuid:{}</wsa:MessageID>{relates}<wsa:To>{to}</wsa:To>\
             <wsa:Action>{NS_DISCOVERY}/{action}</wsa:Action>\
             <d:AppSequence InstanceId=\"{}\" MessageNumber=\"{number}\"/></s:Header><s:Body>{body}</s:Body></s:Envelope>",
            uuid::Uuid::new_v4(),
            self.instance,
        )
    }

    /// Where the device service answers now: HTTPS, and plain HTTP while it is allowed.
    fn xaddrs(&self) -> String {
        match (self.device.plain_http(), self.secure_xaddrs.is_empty()) {
            (_, true) => self.plain_xaddrs.clone(),
            (true, false) => format!("{} {}", self.plain_xaddrs, self.secure_xaddrs),
            (false, false) => self.secure_xaddrs.clone(),
        }
    }

    /// EndpointReference, Types, Scopes, XAddrs and MetadataVersion: the body of Hello
    /// and of every match.
    fn description(&self) -> String {
        let (fixed, configurable) = self.device.scopes();
        let scopes: Vec<String> = fixed.into_iter().chain(configurable).collect();
        format!(
            "<wsa:EndpointReference><wsa:Address>{}</wsa:Address></wsa:EndpointReference>\
             <d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>{}</d:Scopes>\
             <d:XAddrs>{}</d:XAddrs><d:MetadataVersion>{}</d:MetadataVersion>",
            self.device.endpoint_reference(),
            escape(&scopes.join(" ")),
            escape(&self.xaddrs()),
            self.metadata_version.load(Ordering::Relaxed),
        )
    }

    fn hello(&self) -> String {
        self.envelope(
            "Hello",
            "urn:schemas-xmlsoap-org:ws:2005:04:discovery",
            None,
            &format!("<d:Hello>{}</d:Hello>", self.description()),
        )
    }

    fn bye(&self) -> String {
        self.envelope(
            "Bye",
            "urn:schemas-xmlsoap-org:ws:2005:04:discovery",
            None,
            &format!(
                "<d:Bye><wsa:EndpointReference><wsa:Address>{}</wsa:Address></wsa:EndpointReference></d:Bye>",
                self.device.endpoint_reference()
            ),
        )
    }

    /// The answer to a Probe or Resolve that this device matches; `None` otherwise
    /// (including for anything malformed: discovery never faults, it stays silent).
    fn answer(&self, datagram: &[u8]) -> Option<String> {
        let limits = Limits {
            max_bytes: 32 * 1024,
            ..Limits::default()
        };
        let envelope = xml::parse(datagram, &limits).ok()?;
        if !envelope.is(NS_SOAP, "Envelope") {
            return None;
        }
        let header = envelope.children.iter().find(|c| c.is(NS_SOAP, "Header"))?;
        let message_id = header
            .children
            .iter()
            .find(|c| c.is(NS_WSA, "MessageID"))?
            .text
            .trim()
            .to_string();
        let body = envelope.children.iter().find(|c| c.is(NS_SOAP, "Body"))?;
        let request = body.children.first()?;
        let anonymous = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
        if request.is(NS_DISCOVERY, "Probe") {
            let scope = [&envelope, body, request];
            if !self.matches_probe(&scope, request) {
                return None;
            }
            Some(self.envelope(
                "ProbeMatches",
                anonymous,
                Some(&message_id),
                &format!(
                    "<d:ProbeMatches><d:ProbeMatch>{}</d:ProbeMatch></d:ProbeMatches>",
                    self.description()
                ),
            ))
        } else if request.is(NS_DISCOVERY, "Resolve") {
            let wanted = request.find(&["EndpointReference", "Address"])?.text.trim();
            if wanted != self.device.endpoint_reference() {
                return None;
            }
            Some(self.envelope(
                "ResolveMatches",
                anonymous,
                Some(&message_id),
                &format!(
                    "<d:ResolveMatches><d:ResolveMatch>{}</d:ResolveMatch></d:ResolveMatches>",
                    self.description()
                ),
            ))
        } else {
            None
        }
    }

    fn matches_probe(&self, scope: &[&Element], probe: &Element) -> bool {
        if let Some(types) = probe.child("Types") {
            let mut chain = scope.to_vec();
            chain.push(types);
            let ours = [
                (
                    NS_NETWORK.to_string(),
                    "NetworkVideoTransmitter".to_string(),
                ),
                (NS_DEVICE.to_string(), "Device".to_string()),
            ];
            for qname in types.text.split_whitespace() {
                match xml::resolve_qname(&chain, qname) {
                    Some(resolved) if ours.contains(&resolved) => {}
                    _ => return false,
                }
            }
        }
        if let Some(scopes) = probe.child("Scopes") {
            let rule = scopes.attribute("MatchBy").unwrap_or(MATCH_RFC3986);
            let (fixed, configurable) = self.device.scopes();
            let ours: Vec<String> = fixed.into_iter().chain(configurable).collect();
            for wanted in scopes.text.split_whitespace() {
                let found = ours.iter().any(|have| match rule {
                    MATCH_RFC3986 => scope_matches_rfc3986(wanted, have),
                    MATCH_STRCMP => wanted == have,
                    _ => false,
                });
                if !found {
                    return false;
                }
            }
        }
        true
    }
}

/// WS-Discovery's RFC 3986 rule: same scheme and authority (case-insensitively), and
/// the probe's path segments a prefix of the device's.
pub fn scope_matches_rfc3986(wanted: &str, have: &str) -> bool {
    let split = |uri: &str| -> Option<(String, String, Vec<String>)> {
        let (scheme, rest) = uri.split_once("://")?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_string)
            .collect();
        Some((
            scheme.to_ascii_lowercase(),
            authority.to_ascii_lowercase(),
            segments,
        ))
    };
    match (split(wanted), split(have)) {
        (Some((ws, wa, wp)), Some((hs, ha, hp))) => {
            ws == hs && wa == ha && wp.len() <= hp.len() && wp.iter().zip(&hp).all(|(a, b)| a == b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcer() -> Announcer {
        let (device, _) = crate::testing::device(None);
        Announcer {
            device,
            plain_xaddrs: "http://192.0.2.1:8080/onvif/device_service".into(),
            secure_xaddrs: String::new(),
            instance: 7,
            message_number: AtomicU64::new(1),
            metadata_version: AtomicU64::new(1),
        }
    }

    fn probe(inner: &str) -> Vec<u8> {
        format!(
            "<e:Envelope xmlns:e=\"{NS_SOAP}\" xmlns:w=\"{NS_WSA}\" xmlns:d=\"{NS_DISCOVERY}\">\
             <e:Header><w:MessageID>uuid:probe-1</w:MessageID><w:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>\
             <w:Action>{NS_DISCOVERY}/Probe</w:Action></e:Header><e:Body>{inner}</e:Body></e:Envelope>"
        )
        .into_bytes()
    }

    #[test]
    fn answers_matching_probes_only() {
        let announcer = announcer();
        let typed = probe(&format!("<d:Probe><d:Types xmlns:x=\"{NS_NETWORK}\">x:NetworkVideoTransmitter</d:Types></d:Probe>"));
        let answer = announcer.answer(&typed).expect("a match");
        let parsed = xml::parse(answer.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            parsed.find(&["Header", "RelatesTo"]).unwrap().text,
            "uuid:probe-1"
        );
        let matched = parsed
            .find(&["Body", "ProbeMatches", "ProbeMatch"])
            .unwrap();
        assert_eq!(
            matched
                .find(&["EndpointReference", "Address"])
                .unwrap()
                .text,
            "urn:uuid:00000000-0000-0000-0000-000000000000"
        );
        assert!(matched
            .child_text("Scopes")
            .unwrap()
            .contains("onvif://www.onvif.org/name/Test%20device"));
        assert!(announcer.answer(&probe("<d:Probe/>")).is_some());
        // Same local name, other namespace: not us.
        let wrong_ns = probe(
            "<d:Probe><d:Types xmlns:x=\"urn:other\">x:NetworkVideoTransmitter</d:Types></d:Probe>",
        );
        assert!(announcer.answer(&wrong_ns).is_none());
        let scoped =
            probe("<d:Probe><d:Scopes>onvif://www.onvif.org/location/Lab</d:Scopes></d:Probe>");
        assert!(announcer.answer(&scoped).is_some());
        let strcmp = probe(&format!("<d:Probe><d:Scopes MatchBy=\"{MATCH_STRCMP}\">onvif://www.onvif.org/location</d:Scopes></d:Probe>"));
        assert!(announcer.answer(&strcmp).is_none());
        let elsewhere = probe(
            "<d:Probe><d:Scopes>onvif://www.onvif.org/location/Elsewhere</d:Scopes></d:Probe>",
        );
        assert!(announcer.answer(&elsewhere).is_none());
        assert!(announcer.answer(b"<not-xml").is_none());
        assert!(announcer
            .answer(b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY b \"c\">]><a>&b;</a>")
            .is_none());
    }

    #[test]
    fn answers_resolve_for_its_own_endpoint() {
        let announcer = announcer();
        let ours = probe(
            "<d:Resolve><w:EndpointReference><w:Address>urn:uuid:00000000-0000-0000-0000-000000000000</w:Address></w:EndpointReference></d:Resolve>",
        );
        let answer = announcer.answer(&ours).expect("resolved");
        assert!(
            answer.contains("ResolveMatches")
                && answer.contains("http://192.0.2.1:8080/onvif/device_service")
        );
        let other = probe("<d:Resolve><w:EndpointReference><w:Address>urn:uuid:1</w:Address></w:EndpointReference></d:Resolve>");
        assert!(announcer.answer(&other).is_none());
    }

    #[test]
    fn answers_are_rationed_per_second() {
        let mut budget = AnswerBudget::default();
        assert!((0..ANSWERS_PER_SECOND).all(|_| budget.take()));
        assert!(!budget.take());
    }

    #[test]
    fn rfc3986_scope_matching() {
        let have = "onvif://www.onvif.org/location/building/floor2";
        assert!(scope_matches_rfc3986(
            "onvif://www.onvif.org/location",
            have
        ));
        assert!(scope_matches_rfc3986(
            "ONVIF://WWW.onvif.org/location/building/",
            have
        ));
        assert!(!scope_matches_rfc3986(
            "onvif://www.onvif.org/location/build",
            have
        ));
        assert!(!scope_matches_rfc3986("onvif://www.onvif.org/name", have));
        assert!(!scope_matches_rfc3986(
            "http://www.onvif.org/location",
            have
        ));
    }
}
