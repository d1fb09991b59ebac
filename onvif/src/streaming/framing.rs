//! Cuts a connection's bytes into RTSP requests and interleaved frames, refusing anything
//! over the limits before `rtsp-types` parses it.

use rtsp_types::{Message, Request};

use super::Limits;

/// What a connection sent.
#[derive(Debug)]
pub enum Frame {
    Request(Box<Request<Vec<u8>>>),
    /// `$`, channel, length, data: RTCP from an interleaved client (its keep-alive).
    Interleaved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("the request head is larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("the request has more than {0} header lines")]
    TooManyHeaders(usize),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("bad Content-Length")]
    BadLength,
    #[error("not an RTSP request")]
    Malformed,
}

/// The next complete frame at the start of `buffer` and the bytes it took, `None` while
/// more bytes are needed.
pub fn next_frame(buffer: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, FramingError> {
    if buffer.first() == Some(&b'$') {
        return Ok(interleaved(buffer));
    }
    let window = &buffer[..buffer.len().min(limits.max_head_bytes)];
    let Some(head_end) = find(window, b"\r\n\r\n").map(|at| at + 4) else {
        return if buffer.len() >= limits.max_head_bytes {
            Err(FramingError::HeadTooLarge(limits.max_head_bytes))
        } else {
            Ok(None)
        };
    };
    let head = &buffer[..head_end];
    let lines = head.split(|b| *b == b'\n').count().saturating_sub(3);
    if lines > limits.max_headers {
        return Err(FramingError::TooManyHeaders(limits.max_headers));
    }
    let body = content_length(head)?;
    if body > limits.max_body_bytes {
        return Err(FramingError::BodyTooLarge(limits.max_body_bytes));
    }
    let total = head_end + body;
    if buffer.len() < total {
        return Ok(None);
    }
    match Message::<Vec<u8>>::parse(&buffer[..total]) {
        Ok((Message::Request(request), used)) if used == total => {
            Ok(Some((Frame::Request(Box::new(request)), total)))
        }
        _ => Err(FramingError::Malformed),
    }
}

fn interleaved(buffer: &[u8]) -> Option<(Frame, usize)> {
    let [_, _channel, high, low, ..] = *buffer else {
        return None;
    };
    let total = 4 + usize::from(u16::from_be_bytes([high, low]));
    (buffer.len() >= total).then_some((Frame::Interleaved, total))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Length of a head, 0 without one; a second, different one is refused.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let text = std::str::from_utf8(head).map_err(|_| FramingError::Malformed)?;
    let mut found: Option<usize> = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 9 {
                return Err(FramingError::BadLength);
            }
            let length: usize = value.parse().map_err(|_| FramingError::BadLength)?;
            if found.is_some_and(|f| f != length) {
                return Err(FramingError::BadLength);
            }
            found = Some(length);
        }
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn cuts_requests_and_interleaved_frames() {
        let mut bytes = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec();
        bytes.extend_from_slice(&[b'$', 1, 0, 2, 9, 9]);
        bytes.extend_from_slice(
            b"SET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nabc",
        );
        let (first, used) = next_frame(&bytes, &limits()).unwrap().unwrap();
        assert!(
            matches!(first, Frame::Request(ref r) if *r.method() == rtsp_types::Method::Options)
        );
        let rest = &bytes[used..];
        let (second, used2) = next_frame(rest, &limits()).unwrap().unwrap();
        assert!(matches!(second, Frame::Interleaved));
        assert_eq!(used2, 6);
        let rest = &rest[used2..];
        assert!(next_frame(&rest[..rest.len() - 1], &limits())
            .unwrap()
            .is_none());
        let (third, _) = next_frame(rest, &limits()).unwrap().unwrap();
        let Frame::Request(request) = third else {
            panic!()
        };
        assert_eq!(request.body(), b"abc");
    }

    #[test]
    fn refuses_what_is_over_the_limits_or_malformed() {
        let limits = limits();
        let long = vec![b'a'; limits.max_head_bytes];
        assert_eq!(
            next_frame(&long, &limits).unwrap_err(),
            FramingError::HeadTooLarge(limits.max_head_bytes)
        );
        let many = format!(
            "OPTIONS * RTSP/1.0\r\n{}\r\n",
            "X: y\r\n".repeat(limits.max_headers + 1)
        );
        assert_eq!(
            next_frame(many.as_bytes(), &limits).unwrap_err(),
            FramingError::TooManyHeaders(limits.max_headers)
        );
        let body = b"OPTIONS * RTSP/1.0\r\nContent-Length: 99999999\r\n\r\n";
        assert!(matches!(
            next_frame(body, &limits),
            Err(FramingError::BodyTooLarge(_))
        ));
        let negative = b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(
            next_frame(negative, &limits).unwrap_err(),
            FramingError::BadLength
        );
        for junk in [
            &b"\x00\xff\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
        ] {
            assert_eq!(
                next_frame(junk, &limits).unwrap_err(),
                FramingError::Malformed,
                "{junk:?}"
            );
        }
    }

    #[test]
    fn never_panics_on_noise() {
        let mut state = 0x1234_5678_u32;
        for _ in 0..2_000 {
            let len = (state % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    b"OPTIONS RTSP/1.0\r\n:$ *0123Content-Length\xff"[(state % 41) as usize]
                })
                .collect();
            let _ = next_frame(&bytes, &limits());
        }
    }
}
