#!/usr/bin/python3
"""A real RTSP server on 127.0.0.1 for tests, benchmarks and the demo: GStreamer's RTSP server
serving an H.264 MP4 file, as a camera would.

Run with Debian's python3 (/usr/bin/python3: python3-gi and gir1.2-gst-rtsp-server-1.0 are
installed for it by tools/setup.sh). Prints `ready rtsp://127.0.0.1:PORT/MOUNT` on stdout once it
listens, then serves until killed.

Each client gets the file once from its start, in real time, then the stream ends; a camera
that reconnects gets it again (so the daemon sees an endless, if restarting, stream).
  --user/--password  require RTSP basic authentication
  --mount  may be given several times: every mount serves the same file
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mount", action="append", default=None)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--transport", choices=["tcp", "udp", "any"], default="any")
    args = parser.parse_args()
    mounts = args.mount or ["/stream"]

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    location = args.file.replace('"', '\\"')
    launch = (
        f'( filesrc location="{location}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        basic = GstRtspServer.RTSPAuth.make_basic(args.user, args.password or "")
        auth.add_basic(basic, token)
        server.set_auth(auth)

    for mount in mounts:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(False)
        if args.transport == "tcp":
            factory.set_protocols(GstRtspServer.RTSPLowerTrans.TCP)
        elif args.transport == "udp":
            factory.set_protocols(GstRtspServer.RTSPLowerTrans.UDP)
        if args.user:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_role("user")
            permissions.add_permission_for_role("user", "media.factory.access", True)
            permissions.add_permission_for_role("user", "media.factory.construct", True)
            factory.set_permissions(permissions)
        server.get_mount_points().add_factory(mount, factory)

    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        sys.exit(1)
    port = server.get_bound_port()
    for mount in mounts:
        print(f"ready rtsp://127.0.0.1:{port}{mount}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
