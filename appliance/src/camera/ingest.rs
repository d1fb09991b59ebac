//! One camera's ingest: a blocking thread that opens the RTSP stream with ffmpeg, demuxes,
//! decodes (H.264, H.265, whatever ffmpeg decodes), converts to RGB and hands frames sampled at
//! the analysed rate to the camera's queue. Whatever goes wrong (refused, unauthorised, not
//! found, stalled, corrupt, ended) is reported with its reason and retried with capped
//! exponential backoff, until the camera is stopped. An `rtsps://` camera's TLS connection
//! is made and verified by [`super::tls_relay`] first; ffmpeg gets it relayed over loopback.

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;
use image::RgbImage;

use super::queue::DropOldestQueue;
use super::tls_relay::{Relay, TlsRelayError};
use crate::config::{CameraConfig, Transport};
use crate::events::CameraState;

/// A decoded, converted frame chosen for analysis.
pub struct Frame {
    pub image: RgbImage,
    /// Seconds since this connection's first frame, from the stream's timestamps.
    pub stream_time_s: f64,
    pub received: DateTime<Utc>,
    /// Counts the camera's connections: a new one restarts stream time.
    pub connection: u64,
}

#[derive(Clone, Debug)]
pub struct IngestTimeouts {
    /// Opening the stream (connect, RTSP set-up, first stream info).
    pub open: Duration,
    /// No packet for this long: the stream has stalled.
    pub stall: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for IngestTimeouts {
    fn default() -> Self {
        Self {
            open: Duration::from_secs(10),
            stall: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Refuse frames larger than this (8K): a hostile or broken stream must not exhaust memory.
pub const MAX_FRAME_PIXELS: u64 = 7680 * 4320;
/// Consecutive packets the decoder refuses before the stream counts as corrupt.
const MAX_CONSECUTIVE_DECODE_ERRORS: u32 = 200;

/// Set to stop a camera; wakes its backoff wait.
#[derive(Default)]
pub struct StopSignal {
    stopped: AtomicBool,
    lock: parking_lot::Mutex<()>,
    wake: parking_lot::Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock();
        self.wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits up to `d`; true if stopped meanwhile.
    fn wait(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut guard = self.lock.lock();
        while !self.is_stopped() {
            if self.wake.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
        self.is_stopped()
    }
}

/// Why one connection ended.
enum Ended {
    Stopped,
    Failed(String),
}

/// Where ingest puts the frames it decodes, counts the packets it could not, says what the
/// stream is, and hands every video packet as it came (for relaying).
pub struct Sink<'a> {
    pub queue: &'a DropOldestQueue<Frame>,
    pub load: &'a super::CameraLoad,
    pub stream: &'a parking_lot::Mutex<Option<StreamInfo>>,
    pub tap: &'a super::TapSlot,
}

/// What a camera's video stream is, as ffmpeg found it at the latest connection: what the
/// ONVIF encoder configuration describes, not what the configuration guesses.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamInfo {
    /// ffmpeg's codec name, e.g. `h264`, `hevc`.
    pub codec: String,
    /// The stream's average frame rate, where it says one.
    pub fps: Option<f64>,
    pub width: u32,
    pub height: u32,
    /// The codec's extradata (parameter sets: `avcC`/`hvcC` or Annex B), as demuxed.
    pub extradata: Vec<u8>,
}

impl StreamInfo {
    /// What an open input's video stream says of itself.
    pub fn of(stream: &ffmpeg::format::stream::Stream) -> Self {
        let parameters = stream.parameters();
        let rate = f64::from(stream.avg_frame_rate());
        // SAFETY: the parameters belong to the open input's stream, which outlives this
        // call; extradata is `extradata_size` bytes when not null.
        let (extradata, width, height) = unsafe {
            let p = parameters.as_ptr();
            let size = usize::try_from((*p).extradata_size).unwrap_or(0);
            let extradata = if (*p).extradata.is_null() || size == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts((*p).extradata, size).to_vec()
            };
            (extradata, (*p).width, (*p).height)
        };
        Self {
            codec: parameters.id().name().to_string(),
            fps: (rate.is_finite() && rate > 0.0).then_some(rate),
            width: u32::try_from(width).unwrap_or(0),
            height: u32::try_from(height).unwrap_or(0),
            extradata,
        }
    }
}

/// Runs the camera until `stop`: connect, stream, report, back off, again.
pub fn run(
    camera: &CameraConfig,
    timeouts: &IngestTimeouts,
    sink: &Sink,
    stop: &Arc<StopSignal>,
    report: &dyn Fn(CameraState),
) {
    init_ffmpeg();
    if camera.is_rtsps() && camera.transport == Transport::Udp {
        tracing::warn!(camera = %camera.id, "rtsps:// carries its media over the TLS connection: transport udp ignored, tcp used");
    }
    let mut backoff = timeouts.backoff_min;
    let mut connection = 0u64;
    while !stop.is_stopped() {
        connection += 1;
        report(CameraState::Connecting);
        let mut streamed = false;
        let ended = stream_once(camera, timeouts, sink, stop, connection, &mut || {
            streamed = true;
            report(CameraState::Streaming);
        });
        match ended {
            Ended::Stopped => break,
            Ended::Failed(reason) => {
                tracing::warn!(camera = %camera.id, url = %camera.display_url(), %reason, "camera stream failed; retrying");
                report(CameraState::Failed(reason));
            }
        }
        if streamed {
            backoff = timeouts.backoff_min;
        }
        if stop.wait(backoff) {
            break;
        }
        backoff = (backoff * 2).min(timeouts.backoff_max);
    }
    report(CameraState::Stopped);
}

/// Initialises ffmpeg once per process, its own logging silenced.
pub fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg::format::network::init();
        // Failures are reported per camera with their reason; ffmpeg's own chatter stays out
        // of the logs (it may also print URLs with credentials).
        ffmpeg::log::set_level(ffmpeg::log::Level::Quiet);
    });
}

/// What ffmpeg's blocking calls check to give up: the camera stopped, or the deadline passed.
struct Interrupt {
    stop: Arc<StopSignal>,
    base: Instant,
    /// Milliseconds after `base`.
    deadline_ms: AtomicU64,
}

impl Interrupt {
    fn arm(&self, d: Duration) {
        let ms = (self.base.elapsed() + d).as_millis() as u64;
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    fn expired(&self) -> bool {
        self.base.elapsed().as_millis() as u64 > self.deadline_ms.load(Ordering::Relaxed)
    }

    fn should_abort(&self) -> bool {
        self.stop.is_stopped() || self.expired()
    }
}

extern "C" fn interrupt_callback(opaque: *mut std::ffi::c_void) -> std::ffi::c_int {
    // SAFETY: `opaque` is the `Interrupt` that `Input` keeps alive for the context's lifetime.
    let interrupt = unsafe { &*(opaque as *const Interrupt) };
    std::ffi::c_int::from(interrupt.should_abort())
}

/// An open input with the interrupt state its callback points to; the input is closed first.
struct Input {
    context: ffmpeg::format::context::Input,
    _interrupt: Arc<Interrupt>,
}

/// Opens `url` (the camera's, or the TLS relay's for `rtsps://`: `relayed`).
fn open(
    url: &str,
    transport: Transport,
    relayed: bool,
    interrupt: &Arc<Interrupt>,
) -> Result<Input, ffmpeg::Error> {
    let url = CString::new(url).map_err(|_| ffmpeg::Error::InvalidData)?;
    let mut options = ffmpeg::Dictionary::new();
    options.set(
        "rtsp_transport",
        match transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        },
    );
    if relayed {
        // The relay's loopback TCP only: a redirect the camera sends must not make ffmpeg
        // open an unverified `tls` (or any other) connection of its own.
        options.set("protocol_whitelist", "tcp");
    }
    // Keep probing short: a camera's stream says what it is in its first packets.
    options.set("analyzeduration", "2000000");
    options.set("probesize", "2000000");
    // SAFETY: the context is allocated here and handed to `Input::wrap` only once opened; on
    // failure avformat_open_input frees it. The callback's opaque pointer stays valid because
    // the returned `Input` owns an `Arc` of it and drops the context first.
    unsafe {
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ffmpeg::Error::Other {
                errno: ffmpeg::error::ENOMEM,
            });
        }
        (*ps).interrupt_callback = ffi::AVIOInterruptCB {
            callback: Some(interrupt_callback),
            opaque: Arc::as_ptr(interrupt) as *mut std::ffi::c_void,
        };
        let mut opts = options.disown();
        let res = ffi::avformat_open_input(&mut ps, url.as_ptr(), ptr::null(), &mut opts);
        drop(ffmpeg::Dictionary::own(opts));
        if res < 0 {
            return Err(ffmpeg::Error::from(res));
        }
        let res = ffi::avformat_find_stream_info(ps, ptr::null_mut());
        if res < 0 {
            ffi::avformat_close_input(&mut ps);
            return Err(ffmpeg::Error::from(res));
        }
        Ok(Input {
            context: ffmpeg::format::context::Input::wrap(ps),
            _interrupt: interrupt.clone(),
        })
    }
}

/// The reason to report for an ffmpeg error, telling a stall from the rest.
fn reason(e: &ffmpeg::Error, interrupt: &Interrupt, what: &str, timeout: Duration) -> String {
    // Aborted by the deadline: ffmpeg reports that as Exit, or (RTSP during set-up) as
    // invalid data; either way the real reason is the silence.
    if interrupt.expired() {
        format!("{what}: no answer for {} s", timeout.as_secs_f32())
    } else {
        format!("{what}: {e}")
    }
}

fn stream_once(
    camera: &CameraConfig,
    timeouts: &IngestTimeouts,
    sink: &Sink,
    stop: &Arc<StopSignal>,
    connection: u64,
    on_first_frame: &mut dyn FnMut(),
) -> Ended {
    let interrupt = Arc::new(Interrupt {
        stop: stop.clone(),
        base: Instant::now(),
        deadline_ms: AtomicU64::new(0),
    });
    // Declared before `input`, so dropped after it: the relay never outlives ffmpeg's session
    // (whose close still sends its TEARDOWN through it), and ends with it.
    let relay = if camera.is_rtsps() {
        match Relay::open(camera, timeouts.open, stop) {
            Ok(relay) => Some(relay),
            Err(TlsRelayError::Stopped) => return Ended::Stopped,
            Err(e) => return Ended::Failed(e.to_string()),
        }
    } else {
        None
    };
    // A failure with why the camera's TLS side ended, when it did.
    let failed = |reason: String| match relay.as_ref().and_then(Relay::ended) {
        Some(tls) => Ended::Failed(format!("{reason} ({tls})")),
        None => Ended::Failed(reason),
    };
    let (url, transport) = match &relay {
        // RTSP over TLS interleaves its media on the one connection.
        Some(relay) => (
            relay.ffmpeg_url(&camera.url_with_credentials()),
            Transport::Tcp,
        ),
        None => (camera.url_with_credentials(), camera.transport),
    };
    interrupt.arm(timeouts.open);
    let mut input = match open(&url, transport, relay.is_some(), &interrupt) {
        Ok(input) => input,
        Err(_) if stop.is_stopped() => return Ended::Stopped,
        Err(e) => return failed(reason(&e, &interrupt, "cannot open", timeouts.open)),
    };
    let Some(stream) = input.context.streams().best(ffmpeg::media::Type::Video) else {
        return Ended::Failed("the stream has no video".into());
    };
    let stream_index = stream.index();
    let time_base = f64::from(stream.time_base());
    let info = StreamInfo::of(&stream);
    // Stored before the tap hears of it: a tap plugged in meanwhile reads it there.
    *sink.stream.lock() = Some(info.clone());
    sink.tap.format(&camera.id, &info);
    let decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).and_then(
        |mut ctx| {
            // One thread per camera: many cameras share two cores.
            ctx.set_threading(ffmpeg::codec::threading::Config::count(1));
            ctx.decoder().video()
        },
    );
    let mut decoder = match decoder {
        Ok(d) => d,
        Err(e) => return Ended::Failed(format!("no decoder for the video: {e}")),
    };
    if camera.keyframes_only {
        decoder.skip_frame(ffmpeg::codec::discard::Discard::NonKey);
    }

    let mut sampler = Sampler::new(camera.fps);
    let mut converter: Option<Converter> = None;
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut first_ts: Option<i64> = None;
    let started = Instant::now();
    let mut decode_errors = 0u32;
    let mut streaming = false;
    loop {
        interrupt.arm(timeouts.stall);
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(&mut input.context) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => return failed("the stream ended".into()),
            Err(_) if stop.is_stopped() => return Ended::Stopped,
            Err(e) => return failed(reason(&e, &interrupt, "stream broke", timeouts.stall)),
        }
        if packet.stream() != stream_index {
            continue;
        }
        if let Some(data) = packet.data() {
            // Relayed as it came, before decoding: whatever analysis keeps of it.
            let ticks = match packet.pts().or(packet.dts()) {
                Some(ts) => (ts as f64 * time_base * 90_000.0).round() as i64,
                None => (started.elapsed().as_secs_f64() * 90_000.0) as i64,
            };
            let relayed = super::VideoPacket {
                data,
                pts_90k: ticks,
                keyframe: packet.is_key(),
            };
            sink.tap.packet(&camera.id, &relayed);
        }
        if let Err(e) = decoder.send_packet(&packet) {
            decode_errors += 1;
            sink.load.decode_error();
            tracing::debug!(camera = %camera.id, error = %e, "packet refused by the decoder");
            if decode_errors > MAX_CONSECUTIVE_DECODE_ERRORS {
                return Ended::Failed(format!(
                    "corrupt stream: {decode_errors} packets in a row could not be decoded ({e})"
                ));
            }
            continue;
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            decode_errors = 0;
            let t = match decoded.timestamp() {
                Some(ts) => {
                    let first = *first_ts.get_or_insert(ts);
                    (ts - first) as f64 * time_base
                }
                None => started.elapsed().as_secs_f64(),
            };
            if !streaming {
                streaming = true;
                on_first_frame();
            }
            if !sampler.take(t) {
                continue;
            }
            let (w, h) = (decoded.width(), decoded.height());
            if w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_FRAME_PIXELS {
                return Ended::Failed(format!("unusable frame size {w}x{h}"));
            }
            let converter = match &mut converter {
                Some(c) if c.fits(&decoded) => c,
                slot => match Converter::new(&decoded) {
                    Ok(c) => slot.insert(c),
                    Err(e) => return Ended::Failed(format!("cannot convert {w}x{h} frames: {e}")),
                },
            };
            let image = converter.convert(&decoded);
            match image {
                Ok(image) => {
                    let frame = Frame {
                        image,
                        stream_time_s: t,
                        received: Utc::now(),
                        connection,
                    };
                    if !sink.queue.push(frame) {
                        return Ended::Stopped;
                    }
                }
                Err(e) => {
                    tracing::debug!(camera = %camera.id, error = %e, "frame conversion failed")
                }
            }
        }
        if stop.is_stopped() {
            return Ended::Stopped;
        }
    }
}

/// Picks frames at the analysed rate from stream time (live cameras and imported clips).
#[derive(Clone, Debug)]
pub struct Sampler {
    interval: f64,
    next: Option<f64>,
}

impl Sampler {
    pub fn new(fps: f64) -> Self {
        Self::resume(fps, None)
    }

    /// A sampler that goes on where one whose [`Sampler::next`] was `next` stopped.
    pub fn resume(fps: f64, next: Option<f64>) -> Self {
        Self {
            interval: 1.0 / fps,
            next,
        }
    }

    /// The stream time from which the next frame is taken.
    pub fn next(&self) -> Option<f64> {
        self.next
    }

    pub fn take(&mut self, t: f64) -> bool {
        match self.next {
            Some(next) if t + 1e-3 < next => false,
            Some(next) => {
                // On schedule: keep the cadence; late (a gap, keyframes only): start afresh.
                self.next = Some(if t - next > self.interval {
                    t + self.interval
                } else {
                    next + self.interval
                });
                true
            }
            None => {
                self.next = Some(t + self.interval);
                true
            }
        }
    }
}

/// RGB conversion for one frame size and pixel format; rebuilt when the stream changes them.
pub struct Converter {
    scaler: ffmpeg::software::scaling::Context,
    format: ffmpeg::format::Pixel,
    width: u32,
    height: u32,
}

impl Converter {
    pub fn new(frame: &ffmpeg::frame::Video) -> Result<Self, ffmpeg::Error> {
        let (w, h) = (frame.width(), frame.height());
        Ok(Self {
            scaler: ffmpeg::software::scaling::Context::get(
                frame.format(),
                w,
                h,
                ffmpeg::format::Pixel::RGB24,
                w,
                h,
                ffmpeg::software::scaling::Flags::BILINEAR,
            )?,
            format: frame.format(),
            width: w,
            height: h,
        })
    }

    pub fn fits(&self, frame: &ffmpeg::frame::Video) -> bool {
        frame.format() == self.format
            && frame.width() == self.width
            && frame.height() == self.height
    }

    /// The frame as RGB, scaled straight into the image's buffer: no intermediate 6 MB
    /// frame per 1080p picture to allocate, copy and free (with many cameras, freed frames
    /// linger in malloc's per-thread arenas).
    pub fn convert(&mut self, frame: &ffmpeg::frame::Video) -> Result<RgbImage, ffmpeg::Error> {
        if !self.fits(frame) {
            return Err(ffmpeg::Error::InvalidData);
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let mut pixels = vec![0u8; w * h * 3];
        let dst = [
            pixels.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ];
        let dst_stride = [(w * 3) as std::ffi::c_int, 0, 0, 0];
        // SAFETY: the scaler was made for this frame's format and size (checked above), the
        // source planes and strides are the decoded frame's own, and the destination holds
        // exactly `h` rows of `w * 3` bytes, the RGB24 output the scaler writes.
        let rows = unsafe {
            let src = frame.as_ptr();
            ffmpeg::ffi::sws_scale(
                self.scaler.as_mut_ptr(),
                (*src).data.as_ptr() as *const *const u8,
                (*src).linesize.as_ptr(),
                0,
                h as std::ffi::c_int,
                dst.as_ptr(),
                dst_stride.as_ptr(),
            )
        };
        if rows < 0 {
            return Err(ffmpeg::Error::from(rows));
        }
        if rows != h as std::ffi::c_int {
            return Err(ffmpeg::Error::InvalidData);
        }
        Ok(RgbImage::from_raw(self.width, self.height, pixels).expect("sized for the frame"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_a_yuv_frame_to_rgb() {
        init_ffmpeg();
        // 32x16 4:2:0: the left half white, the right half pure blue (BT.601 limited range).
        let (w, h) = (32u32, 16u32);
        let mut frame = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, w, h);
        for (plane, left, right) in [(0, 235u8, 41u8), (1, 128, 240), (2, 128, 110)] {
            let (pw, ph) = if plane == 0 { (w, h) } else { (w / 2, h / 2) };
            let stride = frame.stride(plane);
            let data = frame.data_mut(plane);
            for y in 0..ph as usize {
                for x in 0..pw as usize {
                    data[y * stride + x] = if x < pw as usize / 2 { left } else { right };
                }
            }
        }
        let mut converter = Converter::new(&frame).expect("a scaler");
        let rgb = converter.convert(&frame).expect("converts");
        assert_eq!(rgb.dimensions(), (w, h));
        let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 12);
        assert!(
            near(rgb.get_pixel(2, 8).0, [255, 255, 255]),
            "{:?}",
            rgb.get_pixel(2, 8)
        );
        assert!(
            near(rgb.get_pixel(29, 8).0, [0, 0, 255]),
            "{:?}",
            rgb.get_pixel(29, 8)
        );
        // A frame of another size is refused, not scaled out of bounds.
        let other = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, 64, 32);
        assert!(converter.convert(&other).is_err());
    }

    #[test]
    fn sampler_keeps_the_rate() {
        // 25 fps stream sampled at 5 fps: every fifth frame.
        let mut s = Sampler::new(5.0);
        let taken: Vec<usize> = (0..50).filter(|&i| s.take(i as f64 / 25.0)).collect();
        assert_eq!(taken, vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
        // Keyframes every 2 s at 1 fps: each one is taken.
        let mut s = Sampler::new(1.0);
        assert!((0..5).all(|i| s.take(f64::from(i) * 2.0)));
    }

    #[test]
    fn stop_signal_wakes_a_wait() {
        let stop = Arc::new(StopSignal::default());
        let s = stop.clone();
        let t = std::thread::spawn(move || s.wait(Duration::from_secs(60)));
        stop.stop();
        assert!(t.join().unwrap());
    }
}
