#!/usr/bin/python3
"""A TLS terminator on 127.0.0.1 for the rtsps tests: what an RTSP-over-TLS camera looks like
from the network. It accepts TLS with the given certificate and key, and relays each
connection's bytes to a plain RTSP server (tools/rtsp_server.py) on 127.0.0.1.

Prints `ready PORT` on stdout once it listens, then one line per connection when it ends:
`closed handshake=ok|failed to_backend=N to_client=M` (N: bytes the client sent through to
the RTSP server, 0 when it sent no request), so a test can tell whether anything reached the
camera. Python standard library only; serves until killed.
"""
import argparse
import socket
import ssl
import sys
import threading

lock = threading.Lock()


def report(line):
    with lock:
        print(line, flush=True)


def pump(source, sink, counter, key):
    """Copies source to sink until either side closes; counts the bytes in counter[key]."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
            counter[key] += len(data)
    except OSError:
        pass
    # Either side gone: end both directions so the other pump ends too.
    for s in (source, sink):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(conn, context, backend_port):
    counter = {"to_backend": 0, "to_client": 0}
    conn.settimeout(10)
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()
        report("closed handshake=failed to_backend=0 to_client=0")
        return
    tls.settimeout(None)
    backend = None
    try:
        backend = socket.create_connection(("127.0.0.1", backend_port), timeout=10)
        backend.settimeout(None)
        up = threading.Thread(target=pump, args=(tls, backend, counter, "to_backend"))
        up.start()
        pump(backend, tls, counter, "to_client")
        up.join()
    except OSError:
        pass
    finally:
        for s in (tls, backend):
            if s is not None:
                s.close()
    report(
        f"closed handshake=ok to_backend={counter['to_backend']} "
        f"to_client={counter['to_client']}"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True, help="PEM: the certificate, then its chain")
    parser.add_argument("--key", required=True, help="PEM private key")
    parser.add_argument("--backend-port", type=int, required=True)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(16)
    print(f"ready {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(
            target=serve, args=(conn, context, args.backend_port), daemon=True
        ).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
