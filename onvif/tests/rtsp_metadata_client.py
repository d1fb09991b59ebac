#!/usr/bin/python3
"""Reads an ONVIF metadata stream with GStreamer's rtspsrc, as a VMS would.

Usage: rtsp_metadata_client.py URL USER PASSWORD udp|tcp|http SECONDS

http: RTSP tunnelled over HTTP (rtspsrc's rtsph:// scheme), RTP interleaved in it.

Receives the RTP packets of the metadata track, joins their payloads into documents at
each packet with the marker bit, and prints one JSON line per document
({"xml": ..., "packets": n}). Errors go to stderr as {"error": ...} and exit 2.
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def rtp_payload(data):
    """The payload of an RTP packet and its marker bit (RFC 3550 5.1)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None, False
    csrcs = data[0] & 0x0F
    offset = 12 + 4 * csrcs
    if data[0] & 0x10:  # header extension
        length = int.from_bytes(data[offset + 2:offset + 4], "big")
        offset += 4 + 4 * length
    end = len(data)
    if data[0] & 0x20:  # padding
        end -= data[-1]
    return data[offset:end], bool(data[1] & 0x80)


def play(pipeline, seconds):
    """Plays `pipeline` for `seconds` (or until its end); the exit status: 2 after an error."""
    loop = GLib.MainLoop()
    status = [0]

    def on_message(_bus, message):
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            print(json.dumps({"error": error.message, "debug": debug}), file=sys.stderr, flush=True)
            status[0] = 2
            loop.quit()
        elif message.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add(int(float(seconds) * 1000), loop.quit)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    finally:
        pipeline.set_state(Gst.State.NULL)
    return status[0]


def main():
    url, user, password, protocol, seconds = sys.argv[1:6]
    Gst.init(None)
    pipeline = Gst.parse_launch(
        "rtspsrc name=src latency=0 tcp-timeout=5000000 ! appsink name=sink emit-signals=true sync=false"
    )
    source = pipeline.get_by_name("src")
    if protocol == "http":
        url = "rtsph://" + url.split("://", 1)[1]
    source.set_property("location", url)
    source.set_property("user-id", user)
    source.set_property("user-pw", password)
    source.set_property("protocols", "udp" if protocol == "udp" else "tcp")
    pending = bytearray()
    packets = [0]

    def on_sample(sink):
        sample = sink.emit("pull-sample")
        buffer = sample.get_buffer()
        ok, info = buffer.map(Gst.MapFlags.READ)
        if not ok:
            return Gst.FlowReturn.ERROR
        payload, marker = rtp_payload(bytes(info.data))
        buffer.unmap(info)
        if payload is None:
            return Gst.FlowReturn.OK
        pending.extend(payload)
        packets[0] += 1
        if marker:
            text = pending.decode("utf-8", errors="replace")
            print(json.dumps({"xml": text, "packets": packets[0]}), flush=True)
            pending.clear()
            packets[0] = 0
        return Gst.FlowReturn.OK

    pipeline.get_by_name("sink").connect("new-sample", on_sample)
    sys.exit(play(pipeline, seconds))


if __name__ == "__main__":
    main()
