//! The camera's video as ingest demuxes it, before any decoding, for whoever relays it (the
//! ONVIF side's RTSP server): every packet of every connection, whether analysis keeps up,
//! drops frames or decodes keyframes only. The camera side knows only this trait; the
//! adapter that implements it is installed (and removed) while cameras run.

use std::sync::Arc;

use parking_lot::RwLock;

use super::StreamInfo;

/// One demuxed video packet (an access unit), as the camera sent it.
#[derive(Debug, Clone, Copy)]
pub struct VideoPacket<'a> {
    pub data: &'a [u8],
    /// Presentation time on a 90 kHz clock, from the stream's timestamps.
    pub pts_90k: i64,
    pub keyframe: bool,
}

/// Receives a camera's video. Called on the camera's ingest thread: must not block.
pub trait VideoTap: Send + Sync {
    /// What the stream is, at each connection (before its packets).
    fn format(&self, camera: &str, stream: &StreamInfo);
    fn packet(&self, camera: &str, packet: &VideoPacket<'_>);
}

/// Where the tap, if any, is plugged in; cameras' ingest threads share it.
#[derive(Clone, Default)]
pub struct TapSlot {
    tap: Arc<RwLock<Option<Arc<dyn VideoTap>>>>,
}

impl TapSlot {
    pub fn install(&self, tap: Option<Arc<dyn VideoTap>>) {
        *self.tap.write() = tap;
    }

    pub fn format(&self, camera: &str, stream: &StreamInfo) {
        if let Some(tap) = self.tap.read().as_ref() {
            tap.format(camera, stream);
        }
    }

    pub fn packet(&self, camera: &str, packet: &VideoPacket<'_>) {
        if let Some(tap) = self.tap.read().as_ref() {
            tap.packet(camera, packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counting {
        seen: parking_lot::Mutex<Vec<(String, usize, bool)>>,
    }

    impl VideoTap for Counting {
        fn format(&self, camera: &str, stream: &StreamInfo) {
            self.seen
                .lock()
                .push((format!("{camera}:{}", stream.codec), 0, false));
        }

        fn packet(&self, camera: &str, packet: &VideoPacket<'_>) {
            self.seen
                .lock()
                .push((camera.into(), packet.data.len(), packet.keyframe));
        }
    }

    #[test]
    fn packets_reach_the_tap_while_it_is_plugged_in() {
        let slot = TapSlot::default();
        let packet = VideoPacket {
            data: &[0, 0, 1, 0x65],
            pts_90k: 0,
            keyframe: true,
        };
        slot.packet("cam1", &packet); // nothing plugged in: nothing happens
        let tap = Arc::new(Counting::default());
        slot.install(Some(tap.clone()));
        let stream = StreamInfo {
            codec: "h264".into(),
            fps: Some(25.0),
            width: 1280,
            height: 720,
            extradata: Vec::new(),
        };
        slot.format("cam1", &stream);
        slot.packet("cam1", &packet);
        slot.install(None);
        slot.packet("cam1", &packet);
        assert_eq!(
            *tap.seen.lock(),
            [("cam1:h264".into(), 0, false), ("cam1".into(), 4, true)]
        );
    }
}
