//! Delivery of WS-BaseNotification `Notify` messages to a subscriber's HTTP endpoint.
//!
//! Only IP-literal `http://` addresses inside the configured allow-list are accepted, so
//! a Subscribe cannot turn the device into a client of arbitrary hosts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::events::{ConsumerAllowList, Rendered};
use crate::soap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub address: SocketAddr,
    pub host: String,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str, allow: &ConsumerAllowList) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("the consumer address must be an http:// URL")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the consumer address is not a plain URL".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| "bad port in the consumer address")?,
            ),
            _ => (authority, 80),
        };
        let ip: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| "the consumer address must name an IP address, not a host name")?;
        if !allow.allows(ip) {
            return Err(format!(
                "{ip} is not in the notification consumer allow-list"
            ));
        }
        Ok(Self {
            address: SocketAddr::new(ip, port),
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

/// Sends each message as it comes, retrying a failed one a few times; ends when the
/// subscription is gone (its sender dropped).
pub async fn deliver(
    target: Target,
    subscription: String,
    mut messages: mpsc::Receiver<Arc<Rendered>>,
) {
    while let Some(message) = messages.recv().await {
        let body = soap::envelope(
            "<wsa:Action>http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify</wsa:Action>",
            &format!("<wsnt:Notify>{}</wsnt:Notify>", message.notification_xml(&subscription)),
        );
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=4 {
            match post(&target, body.as_bytes()).await {
                Ok(status) if (200..300).contains(&status) => break,
                outcome => {
                    tracing::warn!(consumer = %target.address, attempt, ?outcome, "Notify was not accepted");
                    if attempt == 4 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }
}

/// One HTTP/1.1 POST; returns the status code.
async fn post(target: &Target, body: &[u8]) -> std::io::Result<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(target.address).await?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/soap+xml; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            target.path,
            target.host,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 1024];
        while !response.windows(2).any(|w| w == b"\r\n") && response.len() < 8192 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&response);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other("no HTTP status line"))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "consumer did not answer in 5 s",
            )
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_addresses_are_checked() {
        let allow = ConsumerAllowList::parse(&["127.0.0.0/8".into()]).unwrap();
        let target = Target::parse("http://127.0.0.1:8081/notify?x=1", &allow).unwrap();
        assert_eq!(target.address, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(target.path, "/notify?x=1");
        assert!(Target::parse("http://10.0.0.1/", &allow).is_err());
        assert!(Target::parse("http://localhost/", &allow).is_err());
        assert!(Target::parse("https://127.0.0.1/", &allow).is_err());
        assert!(Target::parse("http://user@127.0.0.1/", &allow).is_err());
        assert!(Target::parse("file:///etc/passwd", &allow).is_err());
    }
}
