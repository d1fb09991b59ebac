"""WS-Discovery on the built-in default interface, 127.0.0.1: a Probe sent to the multicast
group through the loopback interface, and one sent unicast, must both be answered with a
ProbeMatch. (WSDiscovery skips loopback addresses, hence this raw client.)
Prints one JSON object.
"""

import argparse
import json
import socket
import time
import uuid

PROBE = ('<?xml version="1.0"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" '
         'xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
         'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
         '<e:Header><w:MessageID>uuid:{id}</w:MessageID><w:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>'
         '<w:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action></e:Header>'
         '<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>')


def ask(sock, target):
    message_id = str(uuid.uuid4())
    sock.sendto(PROBE.format(id=message_id).encode(), target)
    try:
        data, _ = sock.recvfrom(65536)
    except socket.timeout:
        return False
    text = data.decode()
    return "ProbeMatches" in text and message_id in text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1)
    # The daemon loads its models before discovery starts: ask until it answers, with a deadline.
    deadline = time.time() + 120
    unicast = False
    while time.time() < deadline and not unicast:
        unicast = ask(sock, ("127.0.0.1", args.port))
    multicast = ask(sock, ("239.255.255.250", args.port))
    print(json.dumps({"unicast": unicast, "multicast": multicast}), flush=True)


if __name__ == "__main__":
    main()
