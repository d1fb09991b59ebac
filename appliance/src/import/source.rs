//! A recorded clip as a source of frames: ffmpeg opens the file (MP4, MKV, whatever its
//! demuxers know), decodes its best video stream (H.264, H.265, ...) frame by frame, and
//! says each frame's time from the clip's own timestamps. It can start part way: a seek to
//! the keyframe before a checkpoint, the frames up to it decoded and skipped by the caller.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use image::RgbImage;

use super::ImportError;
use crate::camera::ingest::{init_ffmpeg, Converter, MAX_FRAME_PIXELS};

/// Packets in a row the decoder refuses before the clip counts as corrupt.
const MAX_CONSECUTIVE_DECODE_ERRORS: u32 = 50;

pub struct Clip {
    path: PathBuf,
    input: ffmpeg::format::context::Input,
    stream: usize,
    time_base: f64,
    /// The stream's first timestamp: frame times count from it, so they are the same
    /// whether the clip is read from its start or after a seek.
    first_ts: i64,
    decoder: ffmpeg::decoder::Video,
    converter: Option<Converter>,
    duration_s: Option<f64>,
    eof_sent: bool,
    decode_errors: u32,
}

impl Clip {
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        init_ffmpeg();
        let bad = |what: &str, e: ffmpeg::Error| ImportError::Video {
            path: path.to_path_buf(),
            message: format!("{what}: {e}"),
        };
        let input = ffmpeg::format::input(&path).map_err(|e| bad("cannot open the video", e))?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| ImportError::Video {
                path: path.to_path_buf(),
                message: "the file has no video stream".into(),
            })?;
        let index = stream.index();
        let time_base = f64::from(stream.time_base());
        let first_ts = match stream.start_time() {
            ts if ts == ffmpeg::ffi::AV_NOPTS_VALUE => 0,
            ts => ts,
        };
        let duration_s = match stream.duration() {
            d if d > 0 => Some(d as f64 * time_base),
            _ if input.duration() > 0 => {
                Some(input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
            }
            _ => None,
        };
        let decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
            .and_then(|ctx| ctx.decoder().video())
            .map_err(|e| bad("no decoder for its video", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            input,
            stream: index,
            time_base,
            first_ts,
            decoder,
            converter: None,
            duration_s,
            eof_sent: false,
            decode_errors: 0,
        })
    }

    /// The video's length in seconds, when the container says.
    pub fn duration_s(&self) -> Option<f64> {
        self.duration_s
    }

    /// Goes to the keyframe at or before stream time `t` (seconds from the first frame).
    pub fn seek_before(&mut self, t: f64) -> Result<(), ImportError> {
        let start_s = self.first_ts as f64 * self.time_base;
        let target = ((start_s + t) * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
        self.input
            // max_ts = target: the keyframe at or before it (ffmpeg takes the end as inclusive).
            .seek(target, ..target)
            .map_err(|e| self.error(format!("cannot seek to {t:.2} s: {e}")))?;
        self.decoder.flush();
        Ok(())
    }

    fn error(&self, message: String) -> ImportError {
        ImportError::Video {
            path: self.path.clone(),
            message,
        }
    }

    /// The next decoded frame's time in seconds from the first frame, the frame in `frame`;
    /// `None` at the end of the clip.
    pub fn next_frame(
        &mut self,
        frame: &mut ffmpeg::frame::Video,
    ) -> Result<Option<f64>, ImportError> {
        loop {
            if self.decoder.receive_frame(frame).is_ok() {
                self.decode_errors = 0;
                let ts = frame.timestamp().unwrap_or(self.first_ts);
                return Ok(Some((ts - self.first_ts) as f64 * self.time_base));
            }
            if self.eof_sent {
                return Ok(None);
            }
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() != self.stream => {}
                Ok(()) => self.send(&packet)?,
                Err(ffmpeg::Error::Eof) => {
                    // The decoder still holds frames: they come out after the end is sent.
                    let _ = self.decoder.send_eof();
                    self.eof_sent = true;
                }
                Err(e) => return Err(self.error(format!("the video breaks off: {e}"))),
            }
        }
    }

    fn send(&mut self, packet: &ffmpeg::Packet) -> Result<(), ImportError> {
        if let Err(e) = self.decoder.send_packet(packet) {
            self.decode_errors += 1;
            tracing::debug!(error = %e, "packet refused by the decoder");
            if self.decode_errors > MAX_CONSECUTIVE_DECODE_ERRORS {
                return Err(self.error(format!(
                    "corrupt video: {} packets in a row could not be decoded ({e})",
                    self.decode_errors
                )));
            }
        }
        Ok(())
    }

    /// The frame as RGB, sized as decoded.
    pub fn to_rgb(&mut self, frame: &ffmpeg::frame::Video) -> Result<RgbImage, ImportError> {
        let (w, h) = (frame.width(), frame.height());
        if w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_FRAME_PIXELS {
            return Err(self.error(format!("unusable frame size {w}x{h}")));
        }
        let converter = match &mut self.converter {
            Some(c) if c.fits(frame) => c,
            slot => slot.insert(Converter::new(frame).map_err(|e| ImportError::Video {
                path: self.path.clone(),
                message: format!("cannot convert {w}x{h} frames: {e}"),
            })?),
        };
        converter.convert(frame).map_err(|e| ImportError::Video {
            path: self.path.clone(),
            message: format!("frame conversion failed: {e}"),
        })
    }
}

/// A frame chosen for analysis, converted, with what a checkpoint after it records.
pub struct Sampled {
    /// Seconds from the clip's first frame.
    pub t: f64,
    pub image: RgbImage,
    /// The sampler's next pick once this frame was taken.
    pub sampler_next: Option<f64>,
    /// Frames decoded so far in this run.
    pub decoded: u64,
}

/// What the reading thread sends, in order: `Opened`, frames, then `End` (or an error).
pub enum Message {
    Opened { duration_s: Option<f64> },
    Frame(Sampled),
    End { last_s: f64, decoded: u64 },
}

/// Reads the clip at `path` (on the calling thread, so no ffmpeg state crosses threads),
/// skips the frames up to `skip_to` (analysed before a checkpoint), and sends the frames
/// `sampler` picks, until the end, an error, or the receiver is gone.
pub fn read_sampled(
    path: &Path,
    skip_to: Option<f64>,
    mut sampler: crate::camera::ingest::Sampler,
    tx: &std::sync::mpsc::SyncSender<Result<Message, ImportError>>,
) {
    let opened = Clip::open(path).and_then(|mut clip| {
        if let Some(position) = skip_to {
            clip.seek_before(position)?;
        }
        Ok(clip)
    });
    let mut clip = match opened {
        Ok(clip) => clip,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let duration_s = clip.duration_s();
    if tx.send(Ok(Message::Opened { duration_s })).is_err() {
        return;
    }
    let mut frame = ffmpeg::frame::Video::empty();
    let (mut last_s, mut decoded) = (skip_to.unwrap_or(0.0), 0);
    loop {
        let message = match clip.next_frame(&mut frame) {
            Ok(Some(t)) => {
                decoded += 1;
                last_s = last_s.max(t);
                // The seek lands on the keyframe before the checkpoint.
                if skip_to.is_some_and(|p| t <= p + 1e-6) || !sampler.take(t) {
                    continue;
                }
                clip.to_rgb(&frame).map(|image| {
                    Message::Frame(Sampled {
                        t,
                        image,
                        sampler_next: sampler.next(),
                        decoded,
                    })
                })
            }
            Ok(None) => Ok(Message::End { last_s, decoded }),
            Err(e) => Err(e),
        };
        let over = !matches!(message, Ok(Message::Frame(_)));
        if tx.send(message).is_err() || over {
            return;
        }
    }
}
