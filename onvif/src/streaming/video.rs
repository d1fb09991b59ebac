//! The camera's video as the relay receives it (one demuxed packet, an access unit, at a
//! time) and as it sends it: H.264 (RFC 6184) and H.265 (RFC 7798) RTP payloads, single NAL
//! unit packets or fragments (FU-A, FU) under [`MAX_PAYLOAD`], nothing re-encoded.
//!
//! Input comes as a demuxer gives it: Annex B (start codes; ffmpeg's RTSP demuxer) or NAL
//! units each prefixed by its length (an mp4's `avcC`/`hvcC`), which the extradata tells.

use base64::Engine as _;

use super::rtp::MAX_PAYLOAD;

/// The dynamic payload type of the video track.
pub const VIDEO_PAYLOAD_TYPE: u8 = 96;
/// A larger access unit is refused (a hostile or broken camera must not exhaust memory):
/// an 8K intra frame at a high bit rate stays well below.
pub const MAX_ACCESS_UNIT: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

impl VideoCodec {
    /// The RTP encoding name of the SDP's `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Self::H264 => "H264",
            Self::H265 => "H265",
        }
    }
}

/// What a source's video is, as the demuxer found it at the latest connection.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFormat {
    pub codec: VideoCodec,
    /// The codec's extradata: `avcC` / `hvcC` (packets are then length-prefixed), Annex B
    /// parameter sets (packets carry start codes), or empty (Annex B, parameter sets in band).
    pub extradata: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub framerate: Option<f32>,
}

/// One demuxed packet: a whole access unit, in the format's framing.
#[derive(Debug, Clone, Copy)]
pub struct VideoPacket<'a> {
    pub data: &'a [u8],
    /// Presentation time on a 90 kHz clock (any origin).
    pub pts_90k: i64,
    /// The demuxer's key flag; an IDR/IRAP picture inside counts as key too.
    pub keyframe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoError {
    #[error("an empty packet")]
    Empty,
    #[error("a packet of {0} bytes is over the {MAX_ACCESS_UNIT}-byte limit")]
    TooLarge(usize),
    #[error("a NAL unit length of {length} runs past the packet's end ({left} bytes left)")]
    LengthBeyondBuffer { length: usize, left: usize },
    #[error("a NAL unit length prefix is cut short")]
    TruncatedLength,
    #[error("no start code: not Annex B")]
    NoStartCode,
    #[error("a NAL unit too short for its header")]
    ShortNal,
    #[error("malformed {0}")]
    Extradata(&'static str),
}

/// How NAL units are delimited in packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    AnnexB,
    /// Each NAL unit after its length in this many bytes (1, 2 or 4).
    LengthPrefixed(usize),
}

/// The parameter sets a decoder needs before a keyframe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterSets {
    pub vps: Option<Vec<u8>>,
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
}

/// What a NAL unit is, as far as the relay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalKind {
    Vps,
    Sps,
    Pps,
    Keyframe,
    Delimiter,
    Other,
}

fn nal_kind(codec: VideoCodec, nal: &[u8]) -> NalKind {
    match codec {
        VideoCodec::H264 => match nal[0] & 0x1f {
            7 => NalKind::Sps,
            8 => NalKind::Pps,
            5 => NalKind::Keyframe,
            9 => NalKind::Delimiter,
            _ => NalKind::Other,
        },
        VideoCodec::H265 => match (nal[0] >> 1) & 0x3f {
            32 => NalKind::Vps,
            33 => NalKind::Sps,
            34 => NalKind::Pps,
            16..=23 => NalKind::Keyframe, // IRAP: BLA, IDR, CRA (and reserved IRAP types)
            35 => NalKind::Delimiter,
            _ => NalKind::Other,
        },
    }
}

/// The bytes of a NAL unit header: RTP payloads are cut after it.
fn header_len(codec: VideoCodec) -> usize {
    match codec {
        VideoCodec::H264 => 1,
        VideoCodec::H265 => 2,
    }
}

/// A source's video as the relay packetises it: the framing and the latest parameter sets
/// (from the extradata, then from the stream itself).
#[derive(Debug, Clone)]
pub struct VideoStream {
    pub format: VideoFormat,
    pub framing: Framing,
    pub parameter_sets: ParameterSets,
}

/// One access unit ready to send: its RTP payloads, the last one closing it (marker bit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub payloads: Vec<Vec<u8>>,
    pub keyframe: bool,
    pub codec: VideoCodec,
}

impl VideoStream {
    pub fn new(format: VideoFormat) -> Result<Self, VideoError> {
        let (framing, parameter_sets) = parse_extradata(format.codec, &format.extradata)?;
        Ok(Self {
            format,
            framing,
            parameter_sets,
        })
    }

    /// The RTP payloads of one packet. A keyframe without its parameter sets gets the
    /// latest ones in front, so a client that starts there can decode it; parameter sets in
    /// the stream replace the extradata's.
    pub fn access_unit(&mut self, packet: &VideoPacket<'_>) -> Result<AccessUnit, VideoError> {
        let codec = self.format.codec;
        let nals = split(packet.data, self.framing)?;
        let minimum = header_len(codec);
        if nals.iter().any(|n| n.len() < minimum) {
            return Err(VideoError::ShortNal);
        }
        let kinds: Vec<NalKind> = nals.iter().map(|n| nal_kind(codec, n)).collect();
        for (nal, kind) in nals.iter().zip(&kinds) {
            let slot = match kind {
                NalKind::Vps => &mut self.parameter_sets.vps,
                NalKind::Sps => &mut self.parameter_sets.sps,
                NalKind::Pps => &mut self.parameter_sets.pps,
                _ => continue,
            };
            if slot.as_deref() != Some(nal) {
                *slot = Some(nal.to_vec());
            }
        }
        let keyframe = packet.keyframe || kinds.contains(&NalKind::Keyframe);
        // An access unit delimiter stays first: the parameter sets go after it.
        let delimiters = kinds
            .iter()
            .take_while(|k| **k == NalKind::Delimiter)
            .count();
        let mut units: Vec<&[u8]> = Vec::with_capacity(nals.len() + 3);
        units.extend(&nals[..delimiters]);
        if keyframe {
            let sets = &self.parameter_sets;
            let wanted = [
                (NalKind::Vps, sets.vps.as_deref(), codec == VideoCodec::H265),
                (NalKind::Sps, sets.sps.as_deref(), true),
                (NalKind::Pps, sets.pps.as_deref(), true),
            ];
            for (kind, set, needed) in wanted {
                if let (true, Some(set), false) = (needed, set, kinds.contains(&kind)) {
                    units.push(set);
                }
            }
        }
        units.extend(&nals[delimiters..]);
        Ok(AccessUnit {
            payloads: payloads(codec, &units, MAX_PAYLOAD),
            keyframe,
            codec,
        })
    }

    /// The SDP lines of the video track after its `m=` line: `a=rtpmap`, `a=fmtp` with the
    /// parameter sets, `a=framerate` where known.
    pub fn sdp_attributes(&self) -> String {
        let pt = VIDEO_PAYLOAD_TYPE;
        let codec = self.format.codec;
        let b64 = |set: &Option<Vec<u8>>| {
            set.as_ref()
                .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
        };
        let sets = &self.parameter_sets;
        let fmtp = match codec {
            VideoCodec::H264 => {
                let mut fmtp = String::from("packetization-mode=1");
                if let Some(sps) = sets.sps.as_ref().filter(|s| s.len() >= 4) {
                    fmtp.push_str(&format!(
                        ";profile-level-id={:02x}{:02x}{:02x}",
                        sps[1], sps[2], sps[3]
                    ));
                }
                if let (Some(sps), Some(pps)) = (b64(&sets.sps), b64(&sets.pps)) {
                    fmtp.push_str(&format!(";sprop-parameter-sets={sps},{pps}"));
                }
                fmtp
            }
            VideoCodec::H265 => [("vps", &sets.vps), ("sps", &sets.sps), ("pps", &sets.pps)]
                .iter()
                .filter_map(|(name, set)| b64(set).map(|v| format!("sprop-{name}={v}")))
                .collect::<Vec<_>>()
                .join(";"),
        };
        let mut lines = format!(
            "a=rtpmap:{pt} {}/{}\r\n",
            codec.encoding_name(),
            super::rtp::CLOCK_RATE
        );
        if !fmtp.is_empty() {
            lines.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
        }
        if let Some(rate) = self.format.framerate.filter(|r| r.is_finite() && *r > 0.0) {
            lines.push_str(&format!("a=framerate:{}\r\n", trim_float(rate)));
        }
        lines
    }
}

fn trim_float(value: f32) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The NAL units of a packet.
pub fn split(data: &[u8], framing: Framing) -> Result<Vec<&[u8]>, VideoError> {
    if data.is_empty() {
        return Err(VideoError::Empty);
    }
    if data.len() > MAX_ACCESS_UNIT {
        return Err(VideoError::TooLarge(data.len()));
    }
    match framing {
        Framing::AnnexB => split_annex_b(data),
        Framing::LengthPrefixed(size) => split_length_prefixed(data, size),
    }
}

/// NAL units between start codes (`00 00 01`, or `00 00 00 01`), trailing zero bytes cut.
fn split_annex_b(data: &[u8]) -> Result<Vec<&[u8]>, VideoError> {
    let mut starts = Vec::new(); // (where the start code begins, where its NAL unit begins)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    match starts.first() {
        None => return Err(VideoError::NoStartCode),
        // Only zero bytes may come before the first start code.
        Some((at, _)) if data[..*at].iter().any(|b| *b != 0) => {
            return Err(VideoError::NoStartCode)
        }
        _ => {}
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, (_, begin)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |(next, _)| *next);
        let mut nal = &data[*begin..end];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    Ok(nals)
}

fn split_length_prefixed(data: &[u8], size: usize) -> Result<Vec<&[u8]>, VideoError> {
    let mut nals = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < size {
            return Err(VideoError::TruncatedLength);
        }
        let (prefix, after) = rest.split_at(size);
        let length = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if length > after.len() {
            return Err(VideoError::LengthBeyondBuffer {
                length,
                left: after.len(),
            });
        }
        let (nal, next) = after.split_at(length);
        if !nal.is_empty() {
            nals.push(nal);
        }
        rest = next;
    }
    Ok(nals)
}

/// The framing packets use and the parameter sets the extradata holds.
pub fn parse_extradata(
    codec: VideoCodec,
    extradata: &[u8],
) -> Result<(Framing, ParameterSets), VideoError> {
    if extradata.first() == Some(&1) {
        return match codec {
            VideoCodec::H264 => parse_avcc(extradata),
            VideoCodec::H265 => parse_hvcc(extradata),
        };
    }
    let mut sets = ParameterSets::default();
    if !extradata.is_empty() {
        for nal in split_annex_b(extradata)? {
            if nal.len() < header_len(codec) {
                continue;
            }
            let slot = match nal_kind(codec, nal) {
                NalKind::Vps => &mut sets.vps,
                NalKind::Sps => &mut sets.sps,
                NalKind::Pps => &mut sets.pps,
                _ => continue,
            };
            slot.get_or_insert_with(|| nal.to_vec());
        }
    }
    Ok((Framing::AnnexB, sets))
}

/// A bounds-checked reader of extradata.
struct Reader<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VideoError> {
        if self.data.len() < n {
            return Err(VideoError::Extradata(self.what));
        }
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, VideoError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, VideoError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A NAL unit after its 16-bit length.
    fn nal(&mut self) -> Result<&'a [u8], VideoError> {
        let length = self.u16()?;
        self.take(length)
    }
}

fn length_size(byte: u8, what: &'static str) -> Result<Framing, VideoError> {
    match (byte & 0x03) + 1 {
        3 => Err(VideoError::Extradata(what)),
        n => Ok(Framing::LengthPrefixed(usize::from(n))),
    }
}

/// `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 5.3.3.1).
fn parse_avcc(data: &[u8]) -> Result<(Framing, ParameterSets), VideoError> {
    const WHAT: &str = "avcC";
    let mut reader = Reader { data, what: WHAT };
    let header = reader.take(5)?;
    let framing = length_size(header[4], WHAT)?;
    let mut sets = ParameterSets::default();
    for _ in 0..(reader.byte()? & 0x1f) {
        let sps = reader.nal()?;
        if !sps.is_empty() {
            sets.sps.get_or_insert_with(|| sps.to_vec());
        }
    }
    for _ in 0..reader.byte()? {
        let pps = reader.nal()?;
        if !pps.is_empty() {
            sets.pps.get_or_insert_with(|| pps.to_vec());
        }
    }
    Ok((framing, sets))
}

/// `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 8.3.3.1).
fn parse_hvcc(data: &[u8]) -> Result<(Framing, ParameterSets), VideoError> {
    const WHAT: &str = "hvcC";
    let mut reader = Reader { data, what: WHAT };
    let header = reader.take(22)?;
    let framing = length_size(header[21], WHAT)?;
    let mut sets = ParameterSets::default();
    for _ in 0..reader.byte()? {
        let kind = reader.byte()? & 0x3f;
        for _ in 0..reader.u16()? {
            let nal = reader.nal()?;
            let slot = match kind {
                32 => &mut sets.vps,
                33 => &mut sets.sps,
                34 => &mut sets.pps,
                _ => continue,
            };
            if !nal.is_empty() {
                slot.get_or_insert_with(|| nal.to_vec());
            }
        }
    }
    Ok((framing, sets))
}

/// The RTP payloads of an access unit's NAL units: each whole if it fits in `max`, else in
/// fragments (H.264 FU-A, H.265 FU). Every NAL unit must hold its header.
pub fn payloads(codec: VideoCodec, nals: &[&[u8]], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(nals.len());
    for nal in nals {
        if nal.len() <= max {
            out.push(nal.to_vec());
            continue;
        }
        let (header, body) = nal.split_at(header_len(codec));
        // FU indicator (H.264) or payload header (H.265), then the FU header.
        let (prefix, kind): (Vec<u8>, u8) = match codec {
            VideoCodec::H264 => (vec![(header[0] & 0xe0) | 28], header[0] & 0x1f),
            VideoCodec::H265 => (
                vec![(header[0] & 0x81) | (49 << 1), header[1]],
                (header[0] >> 1) & 0x3f,
            ),
        };
        let room = max - prefix.len() - 1;
        let chunks: Vec<&[u8]> = body.chunks(room).collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut fragment = Vec::with_capacity(prefix.len() + 1 + chunk.len());
            fragment.extend_from_slice(&prefix);
            let start = if i == 0 { 0x80 } else { 0 };
            let end = if i == last { 0x40 } else { 0 };
            fragment.push(start | end | kind);
            fragment.extend_from_slice(chunk);
            out.push(fragment);
        }
    }
    out
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
