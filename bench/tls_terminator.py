#!/usr/bin/env python3
"""A TLS terminator on loopback for the benchmark: the EC2 emulator behind
HTTPS with keep-alive, as the function meets EC2 on AWS, every connection
counted.

    .venv/bin/python bench/tls_terminator.py --backend 127.0.0.1:PORT --dir bench/work/tls

makes a CA of its own and a server certificate it signs for 127.0.0.1 in
--dir, then prints one line

    TERMINATOR_READY https://127.0.0.1:<tls port> http://127.0.0.1:<plain port> http://127.0.0.1:<stats port>/stats

and serves HTTP/1.1 on the TLS port and on the plain one alike: each
request is read whole (head and Content-Length body) and sent to the
backend on a new connection, its response read whole (by Content-Length)
and written back in one write, and the client's connection stays open.
`GET /stats` on the stats port lists every connection accepted so far
(listener, handshake time, requests, the regions of their SigV4 credential
scopes); `POST /stats/reset` forgets the closed ones.

Why not a byte relay such as socat: the emulator's server (werkzeug's)
closes the connection after every response ("Connection: close", always),
so behind a relay every EC2 call pays a new TLS handshake, which AWS,
keeping connections alive, does not ask for. Here the client's connection
lives on and only the loopback hop to the emulator is per request, the
same on both listeners, so plain and TLS differ by TLS alone. Both legs
set TCP_NODELAY. Python's `ssl` is OpenSSL, as socat's; the certificates
come from `cryptography`, which moto already installs. Loopback only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import ipaddress
import json
import re
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

# The region of a request, from its SigV4 Authorization header.
CREDENTIAL_SCOPE = re.compile(rb"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/[a-z0-9-]+/aws4_request")
MAX_HEAD = 64 * 1024


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key), new in `directory`:
    a CA of the benchmark's own and a certificate it signs for 127.0.0.1 (an
    IP address SAN: no DNS involved). RSA 2048, as AWS's endpoints'."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    valid = (now - dt.timedelta(days=1), now + dt.timedelta(days=365))
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ami-publisher bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def read_message(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message (head, body) from `stream`, the body by its
    Content-Length (the SDK and the emulator always send one; chunked
    messages are refused); None at a clean end of stream."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline(MAX_HEAD)
        if not line:
            if head:
                raise ValueError("connection closed inside a message head")
            return None
        head += line
        if len(head) > MAX_HEAD:
            raise ValueError("message head too large")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            raise ValueError("chunked messages are not supported")
        if name == b"content-length":
            length = int(value)
    body = stream.read(length) if length else b""
    if len(body) != length:
        raise ValueError("connection closed inside a message body")
    return head, body


def keep_alive(head: bytes) -> bytes:
    """The backend's response head without its `Connection: close`: the
    backend closes after every response, the terminator does not."""
    return b"".join(line for line in head.splitlines(keepends=True)
                    if not line.lower().startswith(b"connection:"))


class Terminator:
    def __init__(self, backend: tuple[str, int], cert: Path, key: Path):
        self.backend = backend
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.lock = threading.Lock()
        self.connections: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.listeners = {kind: socket.create_server(("127.0.0.1", 0)) for kind in ("tls", "plain")}

    def port(self, kind: str) -> int:
        return self.listeners[kind].getsockname()[1]

    def serve(self, kind: str) -> None:
        while True:
            sock, _ = self.listeners[kind].accept()
            threading.Thread(target=self._connection, args=(sock, kind), daemon=True).start()

    def _error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def _connection(self, sock: socket.socket, kind: str) -> None:
        accepted = time.monotonic_ns()
        record: dict[str, Any] = {"listener": kind, "accepted_ns": accepted, "handshake_ms": None,
                                  "requests": 0, "regions": [], "open": True}
        with self.lock:
            self.connections.append(record)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if kind == "tls":
                try:
                    sock = self.context.wrap_socket(sock, server_side=True)  # the handshake
                except OSError as e:  # ssl.SSLError included
                    self._error(f"TLS handshake: {type(e).__name__}: {e}")
                    return
                record["handshake_ms"] = (time.monotonic_ns() - accepted) / 1e6
                record["protocol"] = sock.version()
            stream = sock.makefile("rb")
            while True:
                message = read_message(stream)
                if message is None:
                    return
                head, body = message
                m = CREDENTIAL_SCOPE.search(head)
                with self.lock:
                    record["requests"] += 1
                    if m:
                        record["regions"].append(m.group(1).decode())
                response_head, response_body = self._forward(head + body)
                sock.sendall(keep_alive(response_head) + response_body)
        except (ConnectionError, TimeoutError):
            pass  # the function's process is killed at the end of each run
        except (OSError, ValueError) as e:
            self._error(f"{kind} connection: {type(e).__name__}: {e}")
        finally:
            record["open"] = False
            sock.close()

    def _forward(self, request: bytes) -> tuple[bytes, bytes]:
        """Sends `request` to the backend on a new connection; its response,
        read by Content-Length (not up to the backend's close, which comes
        about 10 ms later)."""
        with socket.create_connection(self.backend) as backend:
            backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            backend.sendall(request)
            with backend.makefile("rb") as stream:
                response = read_message(stream)
        if response is None:
            raise ValueError("the backend closed without answering")
        return response

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"connections": [dict(c, regions=list(c["regions"])) for c in self.connections],
                    "errors": list(self.errors)}

    def reset(self) -> None:
        with self.lock:
            self.connections = [c for c in self.connections if c["open"]]
            self.errors.clear()


def stats_server(terminator: Terminator) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._json(terminator.stats())

        def do_POST(self) -> None:
            terminator.reset()
            self._json({"reset": True})

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", required=True, help="127.0.0.1:PORT, the plain-HTTP server behind")
    p.add_argument("--dir", required=True, type=Path, help="where to write the CA and the certificate")
    args = p.parse_args()
    host, _, port = args.backend.rpartition(":")
    if host != "127.0.0.1":
        p.error("--backend must be 127.0.0.1:PORT (loopback only)")
    _, cert, key = make_certificates(args.dir)
    terminator = Terminator((host, int(port)), cert, key)
    stats = stats_server(terminator)
    for target in (stats.serve_forever, lambda: terminator.serve("plain")):
        threading.Thread(target=target, daemon=True).start()
    print(f"TERMINATOR_READY https://127.0.0.1:{terminator.port('tls')} http://127.0.0.1:{terminator.port('plain')} "
          f"http://127.0.0.1:{stats.server_address[1]}/stats", flush=True)
    try:
        terminator.serve("tls")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
