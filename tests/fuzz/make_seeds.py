"""Writes the seed corpus that is not captured from a client (capture.py does those): zips and
multipart uploads of the photos in corpus/image, a JPEG with an EXIF orientation, the
appliance's own configuration files, and hand-written hostile XML. Idempotent:

    PYTHONPATH=.deps/python python3 tests/fuzz/make_seeds.py

The photos in corpus/image are faces of ../shared/testdata shrunk to 64 and 48 pixels with
the `image` crate (JPEG, PNG, BMP, GIF, TIFF, WebP: every format the appliance decodes).
Multipart bodies are stored as `Content-Type: ...` CRLF CRLF body: the harness sends the first
part as the request's Content-Type, so the boundary is fuzzed too.
"""

import io
import os
import re
import struct
import zipfile

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def photo(name):
    with open(os.path.join(CORPUS, "image", name), "rb") as f:
        return f.read()


def exif_jpeg(jpeg, orientation):
    """The JPEG with an APP1 Exif segment holding one Orientation tag (big-endian TIFF)."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHII", 0x0112, 3, 1, orientation << 16) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def zips():
    jpg, png = photo("Barack_Obama_fr01.jpg"), photo("Angelina_Jolie_0001.png")
    out = {}

    def make(name, entries, compression=zipfile.ZIP_DEFLATED, zip64=False):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression) as z:
            for entry, data in entries:
                if entry.endswith("/"):
                    z.writestr(entry, b"")
                elif zip64:
                    with z.open(entry, "w", force_zip64=True) as f:
                        f.write(data)
                else:
                    z.writestr(entry, data)
        out[name] = buffer.getvalue()

    make("folders.zip", [("batch/Barack/1.jpg", jpg), ("batch/Angelina/1.png", png)])
    make("stored.zip", [("Barack/", b""), ("Barack/a.jpg", jpg)], zipfile.ZIP_STORED)
    make("mac.zip", [("Angelina/1.png", png), ("__MACOSX/Angelina/._1.png", b"\x00\x05\x16\x07"),
                     (".DS_Store", b"Bud1"), ("loose.jpg", jpg)])
    make("zip64.zip", [("Barack/z.jpg", jpg)], zip64=True)
    make("names.zip", [("../Barack/x.jpg", jpg), ("Ang\u00e9lina\\w.png", png), ("/abs/Eve/y.jpg", jpg)])
    make("zeros.zip", [("Eve/0.jpg", bytes(256 * 1024)), ("Eve/1.jpg", bytes(256 * 1024))])
    make("empty.zip", [])
    return out


def browser_form(boundary, parts):
    body = b""
    for name, filename, content_type, data in parts:
        body += f"--{boundary}\r\n".encode()
        if filename is None:
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        else:
            body += (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n").encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + body


def requests_form(files, data=None):
    prepared = requests.Request("POST", "https://127.0.0.1/", files=files, data=data).prepare()
    return f"Content-Type: {prepared.headers['Content-Type']}\r\n\r\n".encode() + prepared.body


def main():
    jpg, png = photo("Barack_Obama_fr01.jpg"), photo("Angelina_Jolie_0001.png")
    write("image", "Barack_Obama_fr01-exif6.jpg", exif_jpeg(jpg, 6))
    for name, data in zips().items():
        write("zip", name, data)
    archive = zips()["folders.zip"]
    chrome = "----WebKitFormBoundaryq9XJ4bxu5ZkV3fRa"
    write("multipart", "browser-person.txt", browser_form(chrome, [
        ("person", None, None, b"Barack Obama"), ("files", "fr01.jpg", "image/jpeg", jpg)]))
    write("multipart", "browser-folder.txt", browser_form(chrome, [
        ("files", "batch/Barack/1.jpg", "image/jpeg", jpg), ("files", "batch/Angelina/1.png", "image/png", png)]))
    write("multipart", "browser-zip.txt", browser_form(chrome, [
        ("files", "people.zip", "application/zip", archive)]))
    write("multipart", "requests-files.txt", requests_form(
        [("files", ("Barack/1.jpg", jpg, "image/jpeg")), ("files", ("people.zip", archive, "application/zip"))]))
    write("multipart", "requests-person.txt", requests_form(
        [("files", ("a.png", png, "image/png"))], data={"person": "Angelina"}))
    write("multipart", "unexpected-field.txt", browser_form(chrome, [("other", None, None, b"x")]))

    # The appliance's configuration files: the README's reference, the image's, the demo's.
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = re.search(r"\n\n((?:    .*\n)*?    \[\[camera\]\]\n(?:    .*\n)*)", readme.split("The daemon's configuration")[1])
    write("config", "readme.toml", "\n".join(line[4:] for line in block.group(1).splitlines()) + "\n")
    with open(os.path.join(ROOT, "image-build/rootfs/etc/vigil/vigil.toml"), encoding="utf-8") as f:
        write("config", "image.toml", f.read())
    write("config", "demo.toml", 'demo = true\n[onvif]\nlisten = "127.0.0.1:8080"\n[web]\nlisten = "127.0.0.1:8443"\n'
          '[[camera]]\nid = "demo"\nname = "Demo: test video"\nurl = "rtsp://127.0.0.1:34343/stream"\nfps = 5\nmode = "both"\n')
    write("config", "refused.toml", "[analysis]\nmin_face = 5\n[[camera]]\nid = \"a b\"\nurl = \"\"\n")

    # Hostile XML: what the parser must refuse, and the legal corners it must take.
    soap = "http://www.w3.org/2003/05/soap-envelope"
    write("xml", "doctype.xml", '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
          f'<s:Envelope xmlns:s="{soap}"><s:Body><x>&lol2;</x></s:Body></s:Envelope>')
    write("xml", "xxe.xml", '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    write("xml", "refs.xml", f'<s:Envelope xmlns:s="{soap}"><s:Body><a b="&lt;&#x41;&#65;&quot;">&amp;&apos;&gt;&#x1F600;'
          '<![CDATA[<not>&markup;]]><!-- c --></a></s:Body></s:Envelope>')
    write("xml", "pi.xml", '<?xml version="1.0" encoding="UTF-8"?><?xml-stylesheet href="x"?><r/>')
    write("xml", "deep.xml", "<a>" * 40 + "</a>" * 40)
    write("xml", "prefixes.xml", '<p:r xmlns:p="urn:p" xmlns="urn:d"><q:x/><c p:a="1" xmlns:p="urn:other"/></p:r>')
    write("soap", "soap11.xml", '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
          '<GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')
    write("wsse", "plaintext.xml", f'<s:Envelope xmlns:s="{soap}"><s:Header><wsse:Security xmlns:wsse='
          '"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken>'
          '<wsse:Username>fuzz</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/'
          'oasis-200401-wss-username-token-profile-1.0#PasswordText">fuzz-password</wsse:Password>'
          '</wsse:UsernameToken></wsse:Security></s:Header><s:Body><GetUsers xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
          '</s:Body></s:Envelope>')


if __name__ == "__main__":
    main()
