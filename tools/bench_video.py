#!/usr/bin/python3
"""Re-encodes a video to 1920x1080 H.264 with a keyframe every 25 frames (1 s at 25 fps), no
B-frames, as the camera-count benchmark's stream. GStreamer (Debian's python3-gi):
  bench_video.py IN.mp4 OUT.mp4
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'filesrc location="{src}" ! qtdemux ! h264parse ! openh264dec ! videoconvert '
        "! videoscale ! video/x-raw,width=1920,height=1080,format=I420 "
        "! x264enc key-int-max=25 bframes=0 speed-preset=veryfast bitrate=4000 "
        "! video/x-h264,profile=main ! h264parse ! mp4mux "
        f'! filesink location="{dst}"'
    )
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        print(f"bench_video: {err.message} ({debug})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
