//! Following faces across one camera's frames and deciding what to alert on.
//!
//! A face joins the track whose face it most resembles (embedding similarity, gated by
//! position), else starts a new one. Each track keeps its best shots by quality. A track raises
//! one FaceMatched alert when it first matches (upgraded, same alert id, when a later shot
//! scores clearly higher), and one UnregisteredFace alert when it has stayed unmatched for the
//! configured time or ends unmatched. Time is the stream's own (frame timestamps), so a stalled
//! or replayed stream behaves the same as a live one.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use image::RgbImage;
use uuid::Uuid;

use crate::config::{AnalysisConfig, CameraMode};
use crate::events::{Event, FaceMatched, Shot, TrackEnded, TrackStarted, UnregisteredFace};
use crate::vision::{cosine, BoundingBox};
use crate::watchlist::Candidate;

/// Two sightings are the same face when their embeddings are at least this similar (well below
/// any match threshold: the same face from frame to frame scores 0.7 to 0.99, two people
/// rarely above 0.3).
const SAME_FACE_SIMILARITY: f32 = 0.4;
/// ... and their centres are at most this many face widths apart.
const MAX_JUMP_IN_WIDTHS: f32 = 3.0;
/// A face turned too far to recognise joins a track (or a turned track takes a face) by
/// position alone, the boxes overlapping at least this much (intersection over union): its
/// embedding says little about who it is.
const MIN_IOU_TURNED: f32 = 0.3;
/// A track that ends unmatched after fewer recognisable observations than this raises nothing:
/// one frame is too little to call someone unregistered, and a turned face says nothing.
const MIN_OBSERVATIONS_FOR_UNREGISTERED: usize = 2;
/// Thumbnails: the face box grown by this much on each side, at most this many pixels wide.
const THUMBNAIL_MARGIN: f32 = 0.3;
const THUMBNAIL_MAX_SIDE: u32 = 256;

/// A face in the latest frame of a camera, as its track knows it.
#[derive(Clone, Debug)]
pub struct TrackInView {
    pub track: u64,
    pub bbox: BoundingBox,
    /// The detector's face probability.
    pub score: f32,
    /// The person the track was matched to (its alert's), if any.
    pub matched: Option<Candidate>,
}

/// When a frame was taken.
#[derive(Clone, Copy, Debug)]
pub struct FrameTime {
    pub time: DateTime<Utc>,
    pub stream_time_s: f64,
}

/// One face found in a frame, with its best gallery candidate.
#[derive(Clone, Debug)]
pub struct Observation {
    pub bbox: BoundingBox,
    /// The detector's face probability.
    pub score: f32,
    pub quality: f32,
    pub embedding: Vec<f32>,
    /// The most similar enrolled person; `matched` says whether they reach their list's
    /// threshold.
    pub candidate: Option<Candidate>,
    /// Turned no further than the pipeline's `max_yaw` (see `vision::Face::recognisable`).
    pub recognisable: bool,
    /// The same face as in the camera's last frame, not searched again (nothing changed
    /// around it): it keeps its track alive but is no new shot.
    pub repeated: bool,
}

impl Observation {
    /// An embedded face, matched against `gallery`.
    /// A face turned too far to recognise gets no candidate: it is tracked, not matched.
    pub fn of(face: crate::vision::Face, gallery: &crate::watchlist::Gallery) -> Self {
        Self {
            bbox: face.detection.bbox,
            score: face.detection.score,
            quality: face.quality.score,
            candidate: face
                .recognisable
                .then(|| gallery.closest(&face.embedding))
                .flatten(),
            recognisable: face.recognisable,
            embedding: face.embedding,
            repeated: false,
        }
    }

    /// This observation, marked as a face carried over from the last frame.
    pub fn repeated(self) -> Self {
        Self {
            repeated: true,
            ..self
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrackerSettings {
    pub mode: CameraMode,
    pub unmatched_alert_after_s: f64,
    pub track_timeout_s: f64,
    pub best_shots: usize,
    pub upgrade_margin: f32,
}

impl TrackerSettings {
    pub fn new(analysis: &AnalysisConfig, mode: CameraMode) -> Self {
        Self {
            mode,
            unmatched_alert_after_s: analysis.unmatched_alert_after_s,
            track_timeout_s: analysis.track_timeout_s,
            best_shots: analysis.best_shots,
            upgrade_margin: analysis.upgrade_margin as f32,
        }
    }
}

struct Alert {
    id: Uuid,
    candidate: Candidate,
}

struct Track {
    id: u64,
    start: FrameTime,
    last: FrameTime,
    bbox: BoundingBox,
    /// The detector's face probability in the latest frame.
    score: f32,
    /// Running mean of the track's recognisable embeddings, unit length (the latest turned
    /// one's until the face shows).
    embedding: Vec<f32>,
    observations: usize,
    /// Observations recognisable (see [`Observation::recognisable`]).
    recognised: usize,
    /// Best first.
    best_shots: Vec<Shot>,
    alert: Option<Alert>,
    unregistered_raised: bool,
    best_score: Option<f32>,
    /// The best candidate's likelihood (see `watchlist::gallery::likelihood`).
    best_likelihood: Option<f32>,
}

pub struct Tracker {
    camera: String,
    settings: TrackerSettings,
    tracks: Vec<Track>,
    next_id: u64,
    /// Stream time of the last frame, and the typical gap between frames (a moving average):
    /// a track is not ended merely because frames are sparse (keyframes only).
    last_frame: Option<f64>,
    frame_interval: f64,
}

/// A track survives this many typical frame gaps without its face.
const TIMEOUT_IN_FRAME_GAPS: f64 = 2.5;

impl Tracker {
    pub fn new(camera: String, settings: TrackerSettings) -> Self {
        Self {
            camera,
            settings,
            tracks: Vec::new(),
            next_id: 1,
            last_frame: None,
            frame_interval: 0.0,
        }
    }

    pub fn set_settings(&mut self, settings: TrackerSettings) {
        self.settings = settings;
    }

    /// The number the next track will get.
    pub fn next_track(&self) -> u64 {
        self.next_id
    }

    /// Numbers tracks from `next` on: a resumed import goes on where it stopped, so its
    /// sightings are numbered as in one uninterrupted run.
    pub fn number_from(&mut self, next: u64) {
        self.next_id = next.max(1);
    }

    pub fn active_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// The tracks whose face was in the latest frame, where it was and whom it matched.
    pub fn in_view(&self) -> Vec<TrackInView> {
        let Some(now) = self.last_frame else {
            return Vec::new();
        };
        self.tracks
            .iter()
            .filter(|t| t.last.stream_time_s == now)
            .map(|t| TrackInView {
                track: t.id,
                bbox: t.bbox,
                score: t.score,
                matched: t.alert.as_ref().map(|a| a.candidate.clone()),
            })
            .collect()
    }

    /// Takes the faces of one frame; returns the events they cause.
    pub fn observe(
        &mut self,
        at: FrameTime,
        image: &RgbImage,
        observations: Vec<Observation>,
    ) -> Vec<Event> {
        if let Some(last) = self.last_frame {
            let gap = (at.stream_time_s - last).max(0.0);
            self.frame_interval = if self.frame_interval == 0.0 {
                gap
            } else {
                0.8 * self.frame_interval + 0.2 * gap
            };
        }
        self.last_frame = Some(at.stream_time_s);
        let mut events = self.expire(at.stream_time_s);
        let assignment = self.associate(&observations);
        for (observation, track) in observations.into_iter().zip(assignment) {
            let index = match track {
                Some(i) => i,
                None => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        start: at,
                        last: at,
                        bbox: observation.bbox,
                        score: observation.score,
                        embedding: observation.embedding.clone(),
                        observations: 0,
                        recognised: 0,
                        best_shots: Vec::new(),
                        alert: None,
                        unregistered_raised: false,
                        best_score: None,
                        best_likelihood: None,
                    });
                    events.push(Event::TrackStarted(TrackStarted {
                        camera: self.camera.clone(),
                        track: self.next_id,
                        time: at.time,
                        bbox: observation.bbox,
                    }));
                    self.next_id += 1;
                    self.tracks.len() - 1
                }
            };
            if let Some(event) = self.update(index, at, image, observation) {
                events.push(event);
            }
        }
        // Unmatched for long enough while still in view.
        for i in 0..self.tracks.len() {
            let t = &self.tracks[i];
            if t.alert.is_none()
                && t.recognised > 0
                && !t.unregistered_raised
                && self.settings.mode.alerts_unregistered()
                && t.last.stream_time_s - t.start.stream_time_s
                    >= self.settings.unmatched_alert_after_s
            {
                events.push(self.raise_unregistered(i));
            }
        }
        events
    }

    /// Ends the tracks not seen for the timeout, as of stream time `now`.
    pub fn expire(&mut self, now: f64) -> Vec<Event> {
        let timeout = self
            .settings
            .track_timeout_s
            .max(TIMEOUT_IN_FRAME_GAPS * self.frame_interval);
        let (gone, kept): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| now - t.last.stream_time_s > timeout);
        self.tracks = kept;
        gone.into_iter().flat_map(|t| self.end(t)).collect()
    }

    /// Ends every track: the stream restarted or the camera stopped.
    pub fn finish(&mut self) -> Vec<Event> {
        self.last_frame = None;
        self.frame_interval = 0.0;
        std::mem::take(&mut self.tracks)
            .into_iter()
            .flat_map(|t| self.end(t))
            .collect()
    }

    /// Greedy assignment of observations to tracks by similarity, one observation per track.
    fn associate(&self, observations: &[Observation]) -> Vec<Option<usize>> {
        let mut pairs = Vec::new();
        for (o, obs) in observations.iter().enumerate() {
            for (t, track) in self.tracks.iter().enumerate() {
                let similarity = cosine(&track.embedding, &obs.embedding);
                let (a, b) = (track.bbox.center(), obs.bbox.center());
                let jump = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
                    / track.bbox.width().max(obs.bbox.width()).max(1.0);
                let iou = track.bbox.iou(&obs.bbox);
                let turned = !obs.recognisable || track.recognised == 0;
                let alike = similarity >= SAME_FACE_SIMILARITY || (turned && iou >= MIN_IOU_TURNED);
                if alike && jump <= MAX_JUMP_IN_WIDTHS {
                    pairs.push((similarity.max(0.0) + 0.1 * iou, o, t));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut assigned = vec![None; observations.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, o, t) in pairs {
            if assigned[o].is_none() && !taken[t] {
                assigned[o] = Some(t);
                taken[t] = true;
            }
        }
        assigned
    }

    fn update(
        &mut self,
        index: usize,
        at: FrameTime,
        image: &RgbImage,
        observation: Observation,
    ) -> Option<Event> {
        let settings = self.settings.clone();
        let camera = self.camera.clone();
        let track = &mut self.tracks[index];
        track.last = at;
        track.bbox = observation.bbox;
        track.score = observation.score;
        track.observations += 1;
        if observation.recognisable && !observation.repeated {
            track.recognised += 1;
            let n = track.recognised as f32;
            for (m, &e) in track.embedding.iter_mut().zip(&observation.embedding) {
                *m += (e - *m) / n;
            }
            crate::vision::embed::l2_normalize(&mut track.embedding);
        } else if track.recognised == 0 {
            track.embedding.clone_from(&observation.embedding);
        }
        if let Some(c) = &observation.candidate {
            track.best_score = Some(track.best_score.map_or(c.score, |s| s.max(c.score)));
            track.best_likelihood = Some(
                track
                    .best_likelihood
                    .map_or(c.likelihood, |l| l.max(c.likelihood)),
            );
        }

        let worth_keeping = !observation.repeated
            && (track.best_shots.len() < settings.best_shots
                || track
                    .best_shots
                    .last()
                    .is_some_and(|s| observation.quality > s.quality));
        let matched = observation
            .candidate
            .as_ref()
            .filter(|c| c.matched && settings.mode.alerts_matches());
        let alerting = matched.is_some_and(|c| match &track.alert {
            None => true,
            Some(a) => {
                a.candidate.person_id == c.person_id
                    && c.score >= a.candidate.score + settings.upgrade_margin
            }
        });
        let thumbnail = if worth_keeping || alerting || track.best_shots.is_empty() {
            Arc::new(thumbnail(image, &observation.bbox))
        } else {
            Arc::new(Vec::new())
        };
        if worth_keeping {
            let shot = Shot {
                time: at.time,
                stream_time_s: at.stream_time_s,
                bbox: observation.bbox,
                quality: observation.quality,
                embedding: Arc::new(observation.embedding.clone()),
                thumbnail_jpeg: thumbnail.clone(),
            };
            let pos = track
                .best_shots
                .iter()
                .position(|s| s.quality < shot.quality)
                .unwrap_or(track.best_shots.len());
            track.best_shots.insert(pos, shot);
            track.best_shots.truncate(settings.best_shots);
        }
        let candidate = matched.filter(|_| alerting)?.clone();
        let upgrade = track.alert.is_some();
        let alert = track.alert.get_or_insert_with(|| Alert {
            id: Uuid::new_v4(),
            candidate: candidate.clone(),
        });
        alert.candidate = candidate.clone();
        Some(Event::FaceMatched(FaceMatched {
            alert: alert.id,
            upgrade,
            camera,
            track: track.id,
            person_id: candidate.person_id,
            person: candidate.person,
            watchlist_id: candidate.watchlist_id,
            watchlist: candidate.watchlist,
            watchlist_kind: candidate.kind,
            score: candidate.score,
            likelihood: candidate.likelihood,
            time: at.time,
            stream_time_s: at.stream_time_s,
            bbox: observation.bbox,
            quality: observation.quality,
            thumbnail_jpeg: thumbnail,
        }))
    }

    fn raise_unregistered(&mut self, index: usize) -> Event {
        let track = &mut self.tracks[index];
        track.unregistered_raised = true;
        unregistered_event(&self.camera, track)
    }

    fn end(&self, track: Track) -> Vec<Event> {
        let mut events = Vec::new();
        if track.alert.is_none()
            && !track.unregistered_raised
            && self.settings.mode.alerts_unregistered()
            && track.recognised >= MIN_OBSERVATIONS_FOR_UNREGISTERED
        {
            events.push(unregistered_event(&self.camera, &track));
        }
        let matched = track.alert.as_ref().map(|a| &a.candidate);
        events.push(Event::TrackEnded(TrackEnded {
            camera: self.camera.clone(),
            track: track.id,
            start: track.start.time,
            end: track.last.time,
            observations: track.observations,
            person_id: matched.map(|c| c.person_id),
            person: matched.map(|c| c.person.clone()),
            watchlist_id: matched.map(|c| c.watchlist_id),
            watchlist: matched.map(|c| c.watchlist.clone()),
            score: matched.map(|c| c.score),
            best_score: track.best_score,
            best_shots: track.best_shots,
        }));
        events
    }
}

fn unregistered_event(camera: &str, track: &Track) -> Event {
    let best = track.best_shots.first();
    Event::UnregisteredFace(UnregisteredFace {
        alert: Uuid::new_v4(),
        camera: camera.to_string(),
        track: track.id,
        time: track.last.time,
        stream_time_s: track.last.stream_time_s,
        bbox: best.map_or(track.bbox, |s| s.bbox),
        quality: best.map_or(0.0, |s| s.quality),
        best_score: track.best_score,
        best_likelihood: track.best_likelihood,
        thumbnail_jpeg: best.map_or_else(Default::default, |s| s.thumbnail_jpeg.clone()),
    })
}

/// The face with some margin, as a JPEG of at most `THUMBNAIL_MAX_SIDE` pixels a side.
pub fn thumbnail(image: &RgbImage, bbox: &BoundingBox) -> Vec<u8> {
    let (w, h) = (bbox.width(), bbox.height());
    let x1 = (bbox.x1 - w * THUMBNAIL_MARGIN).max(0.0) as u32;
    let y1 = (bbox.y1 - h * THUMBNAIL_MARGIN).max(0.0) as u32;
    let x2 = ((bbox.x2 + w * THUMBNAIL_MARGIN) as u32).min(image.width());
    let y2 = ((bbox.y2 + h * THUMBNAIL_MARGIN) as u32).min(image.height());
    if x2 <= x1 || y2 <= y1 {
        return Vec::new();
    }
    let (cw, ch) = (x2 - x1, y2 - y1);
    let side = cw.max(ch);
    let crop = if side > THUMBNAIL_MAX_SIDE {
        let f = THUMBNAIL_MAX_SIDE as f32 / side as f32;
        let (tw, th) = (
            ((cw as f32 * f) as u32).max(1),
            ((ch as f32 * f) as u32).max(1),
        );
        // fast_image_resize: SIMD, and it reads the crop in place (the image crate's resize
        // took a tenth of the analysis time with 20 cameras).
        let mut dst =
            fast_image_resize::images::Image::new(tw, th, fast_image_resize::PixelType::U8x3);
        let options = fast_image_resize::ResizeOptions::new()
            .crop(f64::from(x1), f64::from(y1), f64::from(cw), f64::from(ch))
            .resize_alg(fast_image_resize::ResizeAlg::Convolution(
                fast_image_resize::FilterType::Bilinear,
            ));
        match fast_image_resize::Resizer::new().resize(image, &mut dst, &options) {
            Ok(()) => RgbImage::from_raw(tw, th, dst.into_vec()).expect("sized for the output"),
            Err(e) => {
                tracing::warn!(error = %e, "thumbnail resizing failed");
                return Vec::new();
            }
        }
    } else {
        image::imageops::crop_imm(image, x1, y1, cw, ch).to_image()
    };
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    match crop.write_with_encoder(encoder) {
        Ok(()) => out,
        Err(e) => {
            tracing::warn!(error = %e, "thumbnail encoding failed");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: usize) -> Vec<f32> {
        let mut v = vec![0.0f32; 8];
        v[seed % 8] = 1.0;
        v
    }

    fn bbox(x: f32) -> BoundingBox {
        BoundingBox {
            x1: x,
            y1: 10.0,
            x2: x + 50.0,
            y2: 60.0,
        }
    }

    fn candidate(person: u128, score: f32, matched: bool) -> Candidate {
        Candidate {
            person_id: Uuid::from_u128(person),
            person: format!("p{person}"),
            watchlist_id: Uuid::from_u128(99),
            watchlist: "list".into(),
            score,
            matched,
            likelihood: crate::watchlist::gallery::likelihood(score, 0.4),
            kind: Default::default(),
        }
    }

    fn obs(seed: usize, x: f32, quality: f32, c: Option<Candidate>) -> Observation {
        Observation {
            bbox: bbox(x),
            score: 0.99,
            quality,
            embedding: unit(seed),
            candidate: c,
            recognisable: true,
            repeated: false,
        }
    }

    /// A face turned too far to recognise: tracked, never matched.
    fn turned(seed: usize, x: f32) -> Observation {
        Observation {
            recognisable: false,
            ..obs(seed, x, 0.0, None)
        }
    }

    fn at(t: f64) -> FrameTime {
        FrameTime {
            time: Utc::now(),
            stream_time_s: t,
        }
    }

    fn tracker(mode: CameraMode) -> Tracker {
        Tracker::new(
            "cam".into(),
            TrackerSettings::new(&AnalysisConfig::default(), mode),
        )
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                Event::TrackStarted(_) => "started",
                Event::FaceMatched(m) if m.upgrade => "upgrade",
                Event::FaceMatched(_) => "matched",
                Event::UnregisteredFace(_) => "unregistered",
                Event::TrackEnded(_) => "ended",
                Event::CameraStateChanged(_) => "state",
                Event::SightingStored(_) | Event::StorageStateChanged(_) => "storage",
            })
            .collect()
    }

    #[test]
    fn one_alert_per_matched_track_with_upgrades() {
        let img = RgbImage::new(200, 100);
        let mut t = tracker(CameraMode::Both);
        let mut events = Vec::new();
        for (i, score) in [0.6, 0.62, 0.7, 0.71].into_iter().enumerate() {
            let c = Some(candidate(1, score, true));
            events.extend(t.observe(at(i as f64 * 0.2), &img, vec![obs(0, 10.0, 0.5, c)]));
        }
        assert_eq!(kinds(&events), vec!["started", "matched", "upgrade"]);
        assert_eq!(t.active_tracks(), 1);
        // Gone for longer than the timeout: the track ends, matched, no unregistered alert.
        let later = t.observe(at(5.0), &img, vec![]);
        assert_eq!(kinds(&later), vec!["ended"]);
        let Event::TrackEnded(ended) = &later[0] else {
            unreachable!()
        };
        assert_eq!(ended.observations, 4);
        assert_eq!(ended.person.as_deref(), Some("p1"));
    }

    #[test]
    fn a_different_face_in_the_same_place_is_a_new_track() {
        let img = RgbImage::new(200, 100);
        let mut t = tracker(CameraMode::Watchlist);
        let a = t.observe(
            at(0.0),
            &img,
            vec![obs(0, 10.0, 0.5, Some(candidate(1, 0.8, true)))],
        );
        let b = t.observe(
            at(0.2),
            &img,
            vec![obs(1, 10.0, 0.5, Some(candidate(2, 0.8, true)))],
        );
        assert_eq!(kinds(&a), vec!["started", "matched"]);
        assert_eq!(kinds(&b), vec!["started", "matched"]);
        assert_eq!(t.active_tracks(), 2);
    }

    #[test]
    fn unmatched_track_alerts_once_after_the_delay() {
        let img = RgbImage::new(200, 100);
        let mut t = tracker(CameraMode::Unregistered);
        let mut events = Vec::new();
        for i in 0..10 {
            let c = Some(candidate(1, 0.2, false));
            events.extend(t.observe(at(f64::from(i) * 0.2), &img, vec![obs(0, 10.0, 0.5, c)]));
        }
        assert_eq!(kinds(&events), vec!["started", "unregistered"]);
        assert_eq!(kinds(&t.finish()), vec!["ended"]);
    }

    #[test]
    fn short_unmatched_track_alerts_when_it_ends_and_watchlist_mode_stays_quiet() {
        let img = RgbImage::new(200, 100);
        let mut t = tracker(CameraMode::Both);
        t.observe(at(0.0), &img, vec![obs(0, 10.0, 0.5, None)]);
        t.observe(at(0.2), &img, vec![obs(0, 12.0, 0.6, None)]);
        assert_eq!(kinds(&t.finish()), vec!["unregistered", "ended"]);

        let mut t = tracker(CameraMode::Watchlist);
        for i in 0..10 {
            t.observe(at(f64::from(i) * 0.2), &img, vec![obs(0, 10.0, 0.5, None)]);
        }
        assert_eq!(kinds(&t.finish()), vec!["ended"]);
    }

    #[test]
    fn best_shots_are_the_highest_quality() {
        let img = RgbImage::new(200, 100);
        let mut t = tracker(CameraMode::Watchlist);
        for (i, q) in [0.3, 0.9, 0.1, 0.5, 0.7].into_iter().enumerate() {
            t.observe(at(i as f64 * 0.2), &img, vec![obs(0, 10.0, q, None)]);
        }
        let ended = t.finish();
        let Event::TrackEnded(e) = &ended[0] else {
            unreachable!()
        };
        let q: Vec<f32> = e.best_shots.iter().map(|s| s.quality).collect();
        assert_eq!(q, vec![0.9, 0.7, 0.5]);
        assert!(e.best_shots.iter().all(|s| !s.thumbnail_jpeg.is_empty()));
    }

    #[test]
    fn a_face_turning_away_and_back_stays_one_track_and_alone_is_never_called_unregistered() {
        let img = RgbImage::new(200, 100);
        let mut t = tracker(CameraMode::Both);
        let mut events = Vec::new();
        // Frontal, turned (its embedding unlike the frontal one), frontal again.
        let frames = [
            obs(0, 10.0, 0.8, Some(candidate(1, 0.9, true))),
            turned(3, 12.0),
            turned(4, 14.0),
            obs(0, 16.0, 0.8, Some(candidate(1, 0.9, true))),
        ];
        for (i, o) in frames.into_iter().enumerate() {
            events.extend(t.observe(at(i as f64 * 0.2), &img, vec![o]));
        }
        assert_eq!(t.active_tracks(), 1);
        events.extend(t.finish());
        assert_eq!(kinds(&events), vec!["started", "matched", "ended"]);

        // Only ever turned: tracked, but no alert of any kind.
        let mut t = tracker(CameraMode::Both);
        let mut events = Vec::new();
        for i in 0..10 {
            events.extend(t.observe(at(f64::from(i) * 0.2), &img, vec![turned(i as usize, 10.0)]));
        }
        assert_eq!(t.active_tracks(), 1);
        events.extend(t.finish());
        assert_eq!(kinds(&events), vec!["started", "ended"]);
        let Some(Event::TrackEnded(ended)) = events.last() else {
            unreachable!()
        };
        assert_eq!(ended.observations, 10);
    }
}
