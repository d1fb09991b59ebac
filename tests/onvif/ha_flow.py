"""Walks the steps Home Assistant's ONVIF integration takes against a device, with the same
client library (onvif-zeep-async), then waits for a face recognition event by pull point
and by Base Notification push to a consumer of its own. Every pulled message also goes
through Home Assistant's own event parsers (onvif-parsers), as its integration does, and the
flow goes on until the face and motion binary sensors they make have been on and off again.

Prints one JSON object per line: {"step": ...} as it goes, "ready" once both subscriptions
exist (the caller then makes faces appear), and a final {"step": "done", ...} summary.
Exits non-zero on any failure, with the reason on stderr.
"""

import argparse
import asyncio
import datetime as dt
import os
import sys

import aiohttp
import onvif
import onvif_parsers
from aiohttp import web
from onvif import ONVIFCamera
from onvif_parsers.errors import UnknownTopicError

sys.path.insert(0, os.path.dirname(__file__))
from client_lines import emit, failer, simple_items  # noqa: E402

fail = failer("ha_flow")

FACE_TOPIC = "tns1:RuleEngine/Recognition/Face"


def element_items(element):
    """ElementItem Name -> the attributes of the element it holds."""
    if element is None:
        return {}
    found = {}
    for item in getattr(element, "ElementItem", None) or []:
        inner = item._value_1
        found[item.Name] = dict(inner.attrib) if inner is not None else {}
    return found


def describe(message):
    """Topic, source and data of one NotificationMessage."""
    topic = message.Topic._value_1
    payload = message.Message._value_1
    return {
        "topic": topic,
        "source": simple_items(payload.Source),
        "data": simple_items(payload.Data),
        "elements": element_items(payload.Data),
        "operation": payload.PropertyOperation,
    }


class Entities:
    """What Home Assistant's ONVIF integration makes of the messages: entity uid -> its name,
    platform and the values it took, in order (a value repeated is not a change)."""

    def __init__(self):
        self.seen = {}
        self.unknown_topics = set()

    async def feed(self, message):
        # As homeassistant/components/onvif/event.py does before it calls the parsers.
        topic = message.Topic._value_1.rstrip("/.")
        try:
            parsed = await onvif_parsers.parse(topic, "vigil", message)
        except UnknownTopicError:
            self.unknown_topics.add(topic)
            return
        for entity in parsed or []:
            entry = self.seen.setdefault(entity.uid, {
                "name": entity.name, "platform": entity.platform,
                "device_class": entity.device_class, "values": []})
            if not entry["values"] or entry["values"][-1] != entity.value:
                entry["values"].append(entity.value)

    def went_on_and_off(self, name):
        """Whether an entity of this name was on and then off again."""
        for entry in self.seen.values():
            values = entry["values"]
            if entry["name"] == name and True in values and False in values[values.index(True):]:
                return True
        return False


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--wait", type=float, default=150.0)
    args = parser.parse_args()

    wsdl = os.path.join(os.path.dirname(onvif.__file__), "wsdl")
    camera = ONVIFCamera("127.0.0.1", args.port, args.user, args.password, wsdl, no_cache=True)

    # The daemon loads its models before it serves: wait for it, with a deadline.
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        try:
            await camera.update_xaddrs()
            break
        except Exception as error:  # connection refused until the daemon listens
            if asyncio.get_running_loop().time() > deadline:
                fail(f"the device did not answer: {error}")
            await asyncio.sleep(0.2)

    # Set-up, as in homeassistant/components/onvif/device.py.
    emit(step="xaddrs", xaddrs=camera.xaddrs)
    device_mgmt = await camera.create_devicemgmt_service()
    system_date = await device_mgmt.GetSystemDateAndTime()
    utc = system_date.UTCDateTime
    device_time = dt.datetime(utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour, utc.Time.Minute,
                              utc.Time.Second, tzinfo=dt.timezone.utc)
    skew = abs((device_time - dt.datetime.now(dt.timezone.utc)).total_seconds())
    emit(step="time", skew_s=skew)
    capabilities = await camera.get_capabilities()
    if not capabilities or not capabilities.get("Events", {}).get("WSPullPointSupport"):
        fail(f"no pull point support in capabilities: {capabilities}")
    info = await device_mgmt.GetDeviceInformation()
    emit(step="information", manufacturer=info.Manufacturer, model=info.Model,
         firmware=info.FirmwareVersion, serial=info.SerialNumber)
    interfaces = await device_mgmt.GetNetworkInterfaces()
    macs = [i.Info.HwAddress for i in interfaces if i.Enabled and i.Info]
    emit(step="interfaces", macs=macs)

    media = await camera.create_media_service()
    profiles = await media.GetProfiles()
    h264 = [p for p in profiles if p.VideoEncoderConfiguration and p.VideoEncoderConfiguration.Encoding == "H264"]
    emit(step="profiles", tokens=[p.token for p in profiles], h264=[p.token for p in h264])
    if not h264:
        fail("no H.264 profile: Home Assistant would refuse this device")
    profile = h264[0]
    stream = await media.GetStreamUri({
        "ProfileToken": profile.token,
        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
    })
    snapshot_uri = await camera.get_snapshot_uri(profile.token)
    emit(step="uris", stream=stream.Uri, snapshot=snapshot_uri)

    # Events, as in homeassistant/components/onvif/event.py: a pull point first.
    pullpoint = await camera.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
    await pullpoint.set_synchronization_point()
    pull_service = pullpoint.get_service()

    # And a Base Notification subscription pushing to a consumer of our own.
    pushed = []
    arrived = asyncio.Event()
    notification = None

    async def consume(request):
        body = await request.read()
        if notification is not None:
            result = notification.process(body)
            for message in (result.NotificationMessage if result else None) or []:
                pushed.append(describe(message))
                arrived.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/notify", consume)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    consumer_port = site._server.sockets[0].getsockname()[1]
    notification = await camera.create_notification_manager(
        f"http://127.0.0.1:{consumer_port}/notify", dt.timedelta(seconds=60), lambda: None)
    emit(step="ready")

    pulled = []
    entities = Entities()
    deadline = asyncio.get_running_loop().time() + args.wait
    renewed = False
    while asyncio.get_running_loop().time() < deadline:
        response = await pull_service.PullMessages({"MessageLimit": 100, "Timeout": dt.timedelta(seconds=5)})
        for message in response.NotificationMessage or []:
            pulled.append(describe(message))
            await entities.feed(message)
        if not renewed:
            # Home Assistant renews well before the termination time; do it once here.
            await pullpoint._renew_subscription()
            renewed = True
        faces_pulled = [m for m in pulled if m["topic"] == FACE_TOPIC]
        faces_pushed = [m for m in pushed if m["topic"] == FACE_TOPIC]
        if faces_pulled and faces_pushed:
            break
    else:
        fail(f"no face event in time; pulled {pulled}, pushed {pushed}")

    # Home Assistant's sensors: on as faces and motion come, off once they are gone.
    sensors = ("Face Detection", "Motion Alarm")
    while not all(entities.went_on_and_off(name) for name in sensors):
        if asyncio.get_running_loop().time() > deadline:
            fail(f"Home Assistant's sensors did not go on and off in time: {entities.seen}")
        response = await pull_service.PullMessages({"MessageLimit": 100, "Timeout": dt.timedelta(seconds=5)})
        for message in response.NotificationMessage or []:
            pulled.append(describe(message))
            await entities.feed(message)
    emit(step="entities", entities=entities.seen, unknown_topics=sorted(entities.unknown_topics))

    snapshot = await camera.get_snapshot(profile.token)
    emit(step="snapshot", bytes=len(snapshot or b""), jpeg=bool(snapshot and snapshot[:2] == b"\xff\xd8"))

    # Face pictures are served with digest authentication too.
    image_uri = faces_pulled[0]["data"].get("ImageUri")
    picture = await camera._snapshot_client.get(
        image_uri, middlewares=(aiohttp.DigestAuthMiddleware(args.user, args.password),))
    picture_bytes = await picture.read()

    await pullpoint.shutdown()
    await notification.shutdown()
    await runner.cleanup()
    await camera.close()
    emit(step="done", pulled=pulled, pushed=pushed, renewed=renewed,
         picture_status=picture.status, picture_jpeg=picture_bytes[:2] == b"\xff\xd8")


asyncio.run(main())
