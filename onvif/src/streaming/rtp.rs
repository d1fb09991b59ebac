//! RTP packets of metadata documents (ONVIF Streaming 5.1.2.1.1): the XML split into
//! payloads of at most [`MAX_PAYLOAD`] bytes, the marker bit on the packet that closes the
//! document, a 90 kHz timestamp shared by its packets. The video track's payloads come from
//! [`super::video`]; this puts the RTP header on them. Plus RTCP sender reports.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The dynamic payload type the SDP announces.
pub const PAYLOAD_TYPE: u8 = 107;
pub const CLOCK_RATE: u32 = 90_000;
/// Payload bytes per packet: with the 12-byte header and IP/UDP headers, a packet stays
/// under a 1,500-byte Ethernet MTU.
pub const MAX_PAYLOAD: usize = 1_400;

/// One stream's sender state: SSRC, next sequence number, timestamp origin.
#[derive(Debug)]
pub struct RtpSender {
    pub ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp_base: u32,
    origin: std::time::Instant,
    packets: u32,
    octets: u32,
}

impl RtpSender {
    /// A sender of metadata documents ([`PAYLOAD_TYPE`]).
    pub fn new(ssrc: u32, sequence: u16, timestamp_base: u32) -> Self {
        Self::with_payload_type(PAYLOAD_TYPE, ssrc, sequence, timestamp_base)
    }

    pub fn with_payload_type(
        payload_type: u8,
        ssrc: u32,
        sequence: u16,
        timestamp_base: u32,
    ) -> Self {
        Self {
            ssrc,
            payload_type,
            sequence,
            timestamp_base,
            origin: std::time::Instant::now(),
            packets: 0,
            octets: 0,
        }
    }

    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The RTP timestamp of now: the base plus 90 kHz ticks since the stream began.
    pub fn timestamp_now(&self) -> u32 {
        let ticks = (self.origin.elapsed().as_micros() * u128::from(CLOCK_RATE) / 1_000_000) as u32;
        self.timestamp_base.wrapping_add(ticks)
    }

    /// The RTP timestamp of a media time on the 90 kHz clock: the base plus it.
    pub fn timestamp_at(&self, ticks: i64) -> u32 {
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// The packets of one document, in order.
    pub fn packetize(&mut self, document: &[u8]) -> Vec<Vec<u8>> {
        let timestamp = self.timestamp_now();
        let chunks: Vec<&[u8]> = if document.is_empty() {
            vec![&[][..]]
        } else {
            document.chunks(MAX_PAYLOAD).collect()
        };
        self.packets(&chunks, timestamp)
    }

    /// One packet per payload, sharing `timestamp`; the last closes the unit (marker bit).
    pub fn packets<P: AsRef<[u8]>>(&mut self, payloads: &[P], timestamp: u32) -> Vec<Vec<u8>> {
        let last = payloads.len().saturating_sub(1);
        payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                let payload = payload.as_ref();
                let packet = self.packet(payload, i == last, timestamp);
                self.packets = self.packets.wrapping_add(1);
                self.octets = self.octets.wrapping_add(payload.len() as u32);
                packet
            })
            .collect()
    }

    fn packet(&mut self, payload: &[u8], marker: bool, timestamp: u32) -> Vec<u8> {
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80); // version 2, no padding, extension or CSRCs
        packet.push(self.payload_type | if marker { 0x80 } else { 0 });
        packet.extend_from_slice(&self.sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        packet
    }

    /// An RTCP sender report (RFC 3550 6.4.1) tying the RTP clock to wall-clock time, with
    /// an SDES CNAME as a compound packet must carry; `rtp_now` is the RTP timestamp of now.
    pub fn sender_report(&self, cname: &str, rtp_now: u32) -> Vec<u8> {
        let (seconds, fraction) = ntp_time(SystemTime::now());
        let mut report = vec![0x80, 200, 0, 6];
        report.extend_from_slice(&self.ssrc.to_be_bytes());
        report.extend_from_slice(&seconds.to_be_bytes());
        report.extend_from_slice(&fraction.to_be_bytes());
        report.extend_from_slice(&rtp_now.to_be_bytes());
        report.extend_from_slice(&self.packets.to_be_bytes());
        report.extend_from_slice(&self.octets.to_be_bytes());
        report.extend_from_slice(&sdes(self.ssrc, cname));
        report
    }
}

/// An SDES packet with one CNAME item, padded to 32-bit words.
fn sdes(ssrc: u32, cname: &str) -> Vec<u8> {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let mut chunk = ssrc.to_be_bytes().to_vec();
    chunk.extend_from_slice(&[1, name.len() as u8]);
    chunk.extend_from_slice(name);
    chunk.push(0); // end of items
    while !chunk.len().is_multiple_of(4) {
        chunk.push(0);
    }
    let words = (chunk.len() / 4) as u16; // length in words minus one, header word included
    let mut packet = vec![0x81, 202];
    packet.extend_from_slice(&words.to_be_bytes());
    packet.extend_from_slice(&chunk);
    packet
}

/// NTP time: seconds since 1900 and a binary fraction.
fn ntp_time(time: SystemTime) -> (u32, u32) {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = (since.as_secs() + UNIX_TO_NTP) as u32;
    let fraction = ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    (seconds, fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_spans_packets_and_the_last_has_the_marker() {
        let mut sender = RtpSender::new(0xdead_beef, 65_535, 1_000);
        let document = vec![b'x'; MAX_PAYLOAD * 2 + 10];
        let packets = sender.packetize(&document);
        assert_eq!(packets.len(), 3);
        let markers: Vec<bool> = packets.iter().map(|p| p[1] & 0x80 != 0).collect();
        assert_eq!(markers, [false, false, true]);
        let sequences: Vec<u16> = packets
            .iter()
            .map(|p| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        assert_eq!(sequences, [65_535, 0, 1]);
        assert!(packets
            .iter()
            .all(|p| p[1] & 0x7f == PAYLOAD_TYPE && p[0] == 0x80));
        assert!(packets
            .iter()
            .all(|p| p[4..8] == packets[0][4..8] && p[8..12] == 0xdead_beef_u32.to_be_bytes()));
        let payload: Vec<u8> = packets.iter().flat_map(|p| p[12..].to_vec()).collect();
        assert_eq!(payload, document);
    }

    #[test]
    fn sender_reports_are_whole_words() {
        let sender = RtpSender::new(1, 0, 0);
        let report = sender.sender_report("vigil", sender.timestamp_now());
        assert_eq!(report.len() % 4, 0);
        assert_eq!(report[1], 200);
        assert_eq!(report[28 + 1], 202);
        let sdes_words = u16::from_be_bytes([report[30], report[31]]) as usize;
        assert_eq!(report.len(), 28 + 4 * (sdes_words + 1));
    }
}
