#!/usr/bin/python3
"""Plays a media mount (the camera's video relayed, and the metadata) with GStreamer's
rtspsrc, as a VMS built on GStreamer would: one RTSP session, both tracks.

Usage: rtsp_media_client.py URL USER PASSWORD udp|tcp|http SECONDS

The H.264 video track goes through rtph264depay ! h264parse ! openh264dec and prints one JSON
line per decoded frame ({"frame": [width, height]}); the metadata track's RTP payloads are
joined into documents at each marker bit ({"xml": ...}). Errors go to stderr as
{"error": ...} and exit 2.
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rtsp_metadata_client import play, rtp_payload  # noqa: E402


def main():
    url, user, password, protocol, seconds = sys.argv[1:6]
    Gst.init(None)
    pipeline = Gst.Pipeline.new("player")
    source = Gst.ElementFactory.make("rtspsrc", "src")
    if protocol == "http":
        url = "rtsph://" + url.split("://", 1)[1]
    source.set_property("location", url)
    source.set_property("user-id", user)
    source.set_property("user-pw", password)
    source.set_property("latency", 0)
    source.set_property("protocols", "udp" if protocol == "udp" else "tcp")
    pipeline.add(source)
    pending = bytearray()

    def on_frame(sink):
        sample = sink.emit("pull-sample")
        structure = sample.get_caps().get_structure(0)
        print(json.dumps({"frame": [structure.get_value("width"), structure.get_value("height")]}), flush=True)
        return Gst.FlowReturn.OK

    def on_metadata(sink):
        buffer = sink.emit("pull-sample").get_buffer()
        ok, info = buffer.map(Gst.MapFlags.READ)
        if not ok:
            return Gst.FlowReturn.ERROR
        payload, marker = rtp_payload(bytes(info.data))
        buffer.unmap(info)
        if payload is not None:
            pending.extend(payload)
            if marker:
                print(json.dumps({"xml": pending.decode("utf-8", errors="replace")}), flush=True)
                pending.clear()
        return Gst.FlowReturn.OK

    def branch(description, on_sample):
        bin_ = Gst.parse_bin_from_description(description + " ! appsink name=sink emit-signals=true sync=false", True)
        pipeline.add(bin_)
        bin_.get_by_name("sink").connect("new-sample", on_sample)
        bin_.sync_state_with_parent()
        return bin_

    def on_pad(_source, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        structure = caps.get_structure(0)
        media = structure.get_string("media")
        if media == "video":
            target = branch("rtph264depay ! h264parse ! openh264dec ! videoconvert", on_frame)
        elif media == "application":
            target = branch("identity", on_metadata)
        else:
            return
        pad.link(target.get_static_pad("sink"))

    source.connect("pad-added", on_pad)
    sys.exit(play(pipeline, seconds))


if __name__ == "__main__":
    main()
