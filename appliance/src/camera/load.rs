//! How much each camera asks of the box, and whether the box keeps up: frames analysed and
//! dropped, the analysed rate, decode errors and how long a frame waits from its arrival to
//! its events. Counted where the work happens (ingest, the analysis workers), read by the
//! web API, `/metrics` and the Live page's camera tiles.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

/// Upper bounds (seconds) of the frame-to-event latency histogram, as `/metrics` shows it.
pub const LATENCY_BUCKETS_S: [f64; 10] = [0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The analysed rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Latencies kept for the median and 95th percentile.
const LATENCIES_KEPT: usize = 256;

/// How much of an analysed frame the detector searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Searched {
    Whole,
    /// Only the regions that changed.
    Regions,
    /// Nothing: it had not changed.
    Nothing,
}

/// One camera's counters; shared by its ingest thread, the analysis workers and readers.
#[derive(Default)]
pub struct CameraLoad {
    analysed: AtomicU64,
    /// Frames searched whole, in regions, not at all.
    searched: [AtomicU64; 3],
    decode_errors: AtomicU64,
    /// Per bucket of [`LATENCY_BUCKETS_S`], then one for slower frames.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    latency_sum_us: AtomicU64,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    /// When frames were analysed, within the rate window.
    analysed_at: VecDeque<Instant>,
    /// The latest latencies, seconds.
    latencies: VecDeque<f32>,
}

/// The counters at one moment, as the API shows them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadSnapshot {
    pub analysed_frames: u64,
    pub dropped_frames: u64,
    /// Frames analysed a second over the last 10 s.
    pub analysed_fps: f64,
    pub decode_errors: u64,
    /// Analysed frames searched for faces whole, only where they changed, and not at all
    /// (unchanged: their faces stood).
    pub searched_whole: u64,
    pub searched_regions: u64,
    pub unchanged: u64,
    /// From a frame's arrival to its analysis done (its events published), over the latest
    /// frames; `None` before the first.
    pub latency_ms_median: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS_S`] and +Inf, and the sum (s).
    #[serde(skip)]
    pub latency_buckets: Vec<u64>,
    #[serde(skip)]
    pub latency_sum_s: f64,
}

impl CameraLoad {
    /// A frame analysed, `waited` after it arrived.
    pub fn analysed(&self, waited: Duration, searched: Searched) {
        self.analysed.fetch_add(1, Ordering::Relaxed);
        self.searched[searched as usize].fetch_add(1, Ordering::Relaxed);
        let s = waited.as_secs_f64();
        let bucket = LATENCY_BUCKETS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut recent = self.recent.lock();
        recent.analysed_at.push_back(now);
        while recent
            .analysed_at
            .front()
            .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
        {
            recent.analysed_at.pop_front();
        }
        recent.latencies.push_back(s as f32);
        if recent.latencies.len() > LATENCIES_KEPT {
            recent.latencies.pop_front();
        }
    }

    /// A packet the decoder refused.
    pub fn decode_error(&self) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn analysed_frames(&self) -> u64 {
        self.analysed.load(Ordering::Relaxed)
    }

    /// The counters now; `dropped` comes from the camera's queue.
    pub fn snapshot(&self, dropped: u64) -> LoadSnapshot {
        let (rate, mut latencies) = {
            let recent = self.recent.lock();
            let now = Instant::now();
            let in_window = recent
                .analysed_at
                .iter()
                .filter(|t| now.duration_since(**t) <= RATE_WINDOW)
                .count();
            (
                in_window as f64 / RATE_WINDOW.as_secs_f64(),
                recent.latencies.iter().copied().collect::<Vec<f32>>(),
            )
        };
        latencies.sort_by(f32::total_cmp);
        let quantile = |q: f64| {
            (!latencies.is_empty()).then(|| {
                let i = ((latencies.len() - 1) as f64 * q).round() as usize;
                (f64::from(latencies[i]) * 1000.0 * 10.0).round() / 10.0
            })
        };
        let mut cumulative = 0;
        let latency_buckets = self
            .latency_buckets
            .iter()
            .map(|b| {
                cumulative += b.load(Ordering::Relaxed);
                cumulative
            })
            .collect();
        LoadSnapshot {
            analysed_frames: self.analysed_frames(),
            dropped_frames: dropped,
            analysed_fps: (rate * 10.0).round() / 10.0,
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            searched_whole: self.searched[Searched::Whole as usize].load(Ordering::Relaxed),
            searched_regions: self.searched[Searched::Regions as usize].load(Ordering::Relaxed),
            unchanged: self.searched[Searched::Nothing as usize].load(Ordering::Relaxed),
            latency_ms_median: quantile(0.5),
            latency_ms_p95: quantile(0.95),
            latency_buckets,
            latency_sum_s: self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_frames_rates_and_latencies() {
        let load = CameraLoad::default();
        assert_eq!(load.snapshot(0).latency_ms_median, None);
        for (ms, searched) in [
            (20, Searched::Whole),
            (40, Searched::Nothing),
            (60, Searched::Regions),
            (80, Searched::Nothing),
            (2000, Searched::Whole),
        ] {
            load.analysed(Duration::from_millis(ms), searched);
        }
        load.decode_error();
        let s = load.snapshot(7);
        assert_eq!(
            (s.analysed_frames, s.dropped_frames, s.decode_errors),
            (5, 7, 1)
        );
        assert_eq!(s.analysed_fps, 0.5);
        assert_eq!(
            (s.searched_whole, s.searched_regions, s.unchanged),
            (2, 1, 2)
        );
        assert_eq!(s.latency_ms_median, Some(60.0));
        assert_eq!(s.latency_ms_p95, Some(2000.0));
        // 20 ms is in the first bucket, 2 s in the 2.5 s one; the last is every frame.
        assert_eq!(s.latency_buckets[0], 1);
        assert_eq!(s.latency_buckets[6], 4);
        assert_eq!(s.latency_buckets[7], 5);
        assert_eq!(*s.latency_buckets.last().unwrap(), 5);
        assert!((s.latency_sum_s - 2.2).abs() < 1e-9);
    }
}
