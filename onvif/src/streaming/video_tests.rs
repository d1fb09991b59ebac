use super::*;

const SPS: [u8; 8] = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16];
const PPS: [u8; 4] = [0x68, 0xce, 0x0f, 0xc8];

fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    nals.iter()
        .enumerate()
        .flat_map(|(i, n)| {
            // Both start code lengths, as encoders mix them.
            let code: &[u8] = if i % 2 == 0 {
                &[0, 0, 0, 1]
            } else {
                &[0, 0, 1]
            };
            [code, n].concat()
        })
        .collect()
}

fn length_prefixed(nals: &[&[u8]]) -> Vec<u8> {
    nals.iter()
        .flat_map(|n| [&(n.len() as u32).to_be_bytes()[..], n].concat())
        .collect()
}

fn avcc() -> Vec<u8> {
    let mut record = vec![1, 0x42, 0xc0, 0x1f, 0xff, 0xe1];
    record.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    record.extend_from_slice(&SPS);
    record.push(1);
    record.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
    record.extend_from_slice(&PPS);
    record
}

fn h264(extradata: Vec<u8>) -> VideoStream {
    VideoStream::new(VideoFormat {
        codec: VideoCodec::H264,
        extradata,
        width: 1280,
        height: 720,
        framerate: Some(25.0),
    })
    .unwrap()
}

fn packet(data: &[u8], keyframe: bool) -> VideoPacket<'_> {
    VideoPacket {
        data,
        pts_90k: 0,
        keyframe,
    }
}

#[test]
fn start_codes_of_both_lengths_delimit_nal_units() {
    let idr = [0x65, 1, 2, 0, 0, 3];
    let bytes = annex_b(&[&SPS, &PPS, &idr]);
    let nals = split(&bytes, Framing::AnnexB).unwrap();
    assert_eq!(nals, vec![&SPS[..], &PPS[..], &idr[..]]);
    // Trailing zero bytes belong to no NAL unit.
    let padded = [&bytes[..], &[0, 0]].concat();
    assert_eq!(split(&padded, Framing::AnnexB).unwrap().len(), 3);
    assert_eq!(
        split(&[0x65, 1, 2], Framing::AnnexB),
        Err(VideoError::NoStartCode)
    );
    assert_eq!(
        split(&[9, 0, 0, 1, 0x65], Framing::AnnexB),
        Err(VideoError::NoStartCode),
        "bytes before the first start code"
    );
}

#[test]
fn length_prefixes_delimit_nal_units_and_lies_are_refused() {
    let idr = [0x65, 7, 7, 7];
    let bytes = length_prefixed(&[&SPS, &idr]);
    assert_eq!(
        split(&bytes, Framing::LengthPrefixed(4)).unwrap(),
        vec![&SPS[..], &idr[..]]
    );
    let lying = [0, 0, 0x10, 0, 0x65, 1];
    assert_eq!(
        split(&lying, Framing::LengthPrefixed(4)),
        Err(VideoError::LengthBeyondBuffer {
            length: 0x1000,
            left: 2
        })
    );
    assert_eq!(
        split(&[0, 0, 0, 1, 0x65, 0, 0], Framing::LengthPrefixed(4)),
        Err(VideoError::TruncatedLength)
    );
    assert_eq!(
        split(&[], Framing::LengthPrefixed(4)),
        Err(VideoError::Empty)
    );
    assert_eq!(split(&[], Framing::AnnexB), Err(VideoError::Empty));
    let two_byte = [0, 2, 0x41, 9, 0, 1, 0x41];
    assert_eq!(
        split(&two_byte, Framing::LengthPrefixed(2)).unwrap(),
        vec![&[0x41, 9][..], &[0x41][..]]
    );
}

#[test]
fn extradata_says_the_framing_and_parameter_sets() {
    let (framing, sets) = parse_extradata(VideoCodec::H264, &avcc()).unwrap();
    assert_eq!(framing, Framing::LengthPrefixed(4));
    assert_eq!(sets.sps.as_deref(), Some(&SPS[..]));
    assert_eq!(sets.pps.as_deref(), Some(&PPS[..]));
    let (framing, sets) = parse_extradata(VideoCodec::H264, &annex_b(&[&SPS, &PPS])).unwrap();
    assert_eq!(framing, Framing::AnnexB);
    assert_eq!(sets.pps.as_deref(), Some(&PPS[..]));
    let (framing, sets) = parse_extradata(VideoCodec::H264, &[]).unwrap();
    assert_eq!((framing, sets), (Framing::AnnexB, ParameterSets::default()));
    // Every cut of the record is refused, never read past.
    let record = avcc();
    for cut in 1..record.len() {
        assert!(
            parse_extradata(VideoCodec::H264, &record[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut lying = record.clone();
    lying[7] = 0xff; // the SPS length
    assert!(parse_extradata(VideoCodec::H264, &lying).is_err());
}

#[test]
fn hvcc_gives_the_three_parameter_sets() {
    let vps = [0x40, 0x01, 0x0c];
    let sps = [0x42, 0x01, 0x01];
    let pps = [0x44, 0x01, 0xc1];
    let mut record = vec![1; 21];
    record.push(0xf3); // lengthSizeMinusOne 3
    record.push(3);
    for (kind, nal) in [(32u8, &vps[..]), (33, &sps[..]), (34, &pps[..])] {
        record.push(0x80 | kind);
        record.extend_from_slice(&1u16.to_be_bytes());
        record.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        record.extend_from_slice(nal);
    }
    let (framing, sets) = parse_extradata(VideoCodec::H265, &record).unwrap();
    assert_eq!(framing, Framing::LengthPrefixed(4));
    assert_eq!(
        (sets.vps.unwrap(), sets.sps.unwrap(), sets.pps.unwrap()),
        (vps.to_vec(), sps.to_vec(), pps.to_vec())
    );
    for cut in 1..record.len() {
        assert!(parse_extradata(VideoCodec::H265, &record[..cut]).is_err());
    }
}

#[test]
fn small_nal_units_go_whole_and_large_ones_in_fu_a_fragments() {
    let mut idr = vec![0x65];
    idr.extend((0..3_000u32).map(|i| (i % 251) as u8));
    let small = [0x41, 1, 2];
    let out = payloads(VideoCodec::H264, &[&small, &idr], MAX_PAYLOAD);
    assert_eq!(out[0], small);
    let fragments = &out[1..];
    assert_eq!(fragments.len(), 3, "2,999 body bytes in 1,398-byte pieces");
    assert!(fragments.iter().all(|f| f.len() <= MAX_PAYLOAD));
    assert_eq!(fragments[0].len(), MAX_PAYLOAD);
    // FU indicator: NRI of the NAL unit, type 28; FU header: S, E, the NAL unit's type.
    assert!(fragments.iter().all(|f| f[0] == 0x60 | 28));
    let headers: Vec<u8> = fragments.iter().map(|f| f[1]).collect();
    assert_eq!(headers, [0x80 | 5, 5, 0x40 | 5]);
    let body: Vec<u8> = fragments.iter().flat_map(|f| f[2..].to_vec()).collect();
    assert_eq!(body, idr[1..]);
    // A NAL unit of exactly the limit stays whole; one byte more is cut in two.
    let exact = vec![0x41; MAX_PAYLOAD];
    assert_eq!(payloads(VideoCodec::H264, &[&exact], MAX_PAYLOAD).len(), 1);
    let over = vec![0x41; MAX_PAYLOAD + 1];
    let cut = payloads(VideoCodec::H264, &[&over], MAX_PAYLOAD);
    assert_eq!(cut.len(), 2);
    assert_eq!(cut[1].len(), 2 + 2, "the last fragment carries the rest");
}

#[test]
fn large_h265_nal_units_go_in_fu_fragments() {
    let mut cra = vec![21 << 1, 1];
    cra.extend(std::iter::repeat_n(0xab, 2_000));
    let out = payloads(VideoCodec::H265, &[&cra], MAX_PAYLOAD);
    assert_eq!(out.len(), 2);
    for f in &out {
        assert_eq!((f[0] >> 1) & 0x3f, 49, "FU payload header");
        assert_eq!(f[1], 1, "the layer and temporal id kept");
        assert_eq!(f[2] & 0x3f, 21);
        assert!(f.len() <= MAX_PAYLOAD);
    }
    assert_eq!((out[0][2] & 0xc0, out[1][2] & 0xc0), (0x80, 0x40));
    let body: Vec<u8> = out.iter().flat_map(|f| f[3..].to_vec()).collect();
    assert_eq!(body, cra[2..]);
}

#[test]
fn a_keyframe_without_parameter_sets_gets_them_in_front() {
    let mut stream = h264(avcc());
    let idr = [0x65, 0x88, 0x84];
    let au = stream
        .access_unit(&packet(&length_prefixed(&[&idr]), false))
        .unwrap();
    assert!(au.keyframe, "an IDR slice makes a keyframe");
    assert_eq!(au.payloads, vec![SPS.to_vec(), PPS.to_vec(), idr.to_vec()]);
    // A keyframe that carries them is sent as it is; a delta frame never gets them.
    let au = stream
        .access_unit(&packet(&length_prefixed(&[&SPS, &PPS, &idr]), true))
        .unwrap();
    assert_eq!(au.payloads.len(), 3);
    // After an access unit delimiter, which stays first.
    let aud = [0x09, 0xf0];
    let au = stream
        .access_unit(&packet(&length_prefixed(&[&aud, &idr]), false))
        .unwrap();
    assert_eq!(
        au.payloads,
        vec![aud.to_vec(), SPS.to_vec(), PPS.to_vec(), idr.to_vec()]
    );
    let delta = [0x41, 0x9a];
    let au = stream
        .access_unit(&packet(&length_prefixed(&[&delta]), false))
        .unwrap();
    assert!(!au.keyframe);
    assert_eq!(au.payloads, vec![delta.to_vec()]);
}

#[test]
fn parameter_sets_learnt_in_band_replace_the_extradata_s() {
    let mut stream = h264(Vec::new());
    assert_eq!(stream.framing, Framing::AnnexB);
    let new_sps = [0x67, 0x64, 0x00, 0x28, 0xac];
    let idr = [0x65, 1];
    stream
        .access_unit(&packet(&annex_b(&[&new_sps, &PPS, &idr]), true))
        .unwrap();
    assert_eq!(stream.parameter_sets.sps.as_deref(), Some(&new_sps[..]));
    let sdp = stream.sdp_attributes();
    assert!(sdp.contains("a=rtpmap:96 H264/90000\r\n"), "{sdp}");
    assert!(sdp.contains("profile-level-id=640028"), "{sdp}");
    assert!(
        sdp.contains("sprop-parameter-sets=Z2QAKKw=,aM4PyA=="),
        "{sdp}"
    );
    assert!(sdp.contains("a=framerate:25\r\n"), "{sdp}");
    let au = stream
        .access_unit(&packet(&annex_b(&[&idr]), true))
        .unwrap();
    assert_eq!(au.payloads[0], new_sps);
}

#[test]
fn malformed_packets_are_refused_without_panicking() {
    let mut stream = h264(avcc());
    assert_eq!(
        stream.access_unit(&packet(&[], true)),
        Err(VideoError::Empty)
    );
    assert!(matches!(
        stream.access_unit(&packet(&[0, 0, 0, 9, 0x65], true)),
        Err(VideoError::LengthBeyondBuffer { .. })
    ));
    let mut hevc = VideoStream::new(VideoFormat {
        codec: VideoCodec::H265,
        extradata: Vec::new(),
        width: 1,
        height: 1,
        framerate: None,
    })
    .unwrap();
    assert_eq!(
        hevc.access_unit(&packet(&[0, 0, 1, 0x40], false)),
        Err(VideoError::ShortNal),
        "an H.265 NAL unit needs its two header bytes"
    );
    // Noise, in both framings: errors or payloads, never a panic or an oversized payload.
    let mut state = 0x9e37_79b9_u32;
    let mut annex = h264(Vec::new());
    for _ in 0..5_000 {
        let len = (state % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                [0, 0, 1, 0x65, 0x67, 0x68, 0xff, 3][(state % 8) as usize]
            })
            .collect();
        for s in [&mut stream, &mut annex, &mut hevc] {
            if let Ok(au) = s.access_unit(&packet(&bytes, state.is_multiple_of(2))) {
                assert!(au
                    .payloads
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= MAX_PAYLOAD));
            }
        }
    }
}
