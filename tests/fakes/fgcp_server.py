"""The fake FGCP endpoint's HTTPS plumbing: one thread per connection, the
mutual-TLS handshake done there (not in accept), and the two ways FGCP calls
arrive: a signed GET query string, or a multipart POST whose ``Document``
part carries the same fields as XML beside an attached document."""

from __future__ import annotations

import email.parser
import email.policy
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from defusedxml.ElementTree import fromstring as safe_fromstring

if TYPE_CHECKING:
    from tests.fakes.fgcp import FakeFGCP

PATH = "/ovissapi/endpoint"


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, context: ssl.SSLContext, fake: FakeFGCP) -> None:
        self.context, self.fake = context, fake
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        # A client that hung up mid-answer (a timeout test) is not the fake's failure.
        with self.fake.lock:
            self.fake.server_errors.append(repr(sys.exc_info()[1]))

    def finish_request(self, request, client_address) -> None:
        # The handshake happens here, in the connection's thread, not in accept().
        request.settimeout(10)
        tls = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            with self.fake.lock:
                self.fake.handshake_failures.append(str(exc))
            linger(tls)
            tls.close()
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


def linger(sock: socket.socket) -> None:
    """Close as web servers do: stop writing, drain what the client already
    sent, then close. An abrupt close with unread data sends a reset, which can
    destroy the TLS alert (with TLS 1.3 the client's request is already on its
    way when its certificate is refused)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        while sock.recv(65536):
            pass
    except OSError:
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        fields = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self._serve(parts.path, fields, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields: dict[str, str] = {}
        files: dict[str, bytes] = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition") or ""
                payload = part.get_payload(decode=True) or b""
                if name == "Document":
                    doc = safe_fromstring(payload, forbid_dtd=True)
                    fields = {child.tag: (child.text or "") for child in doc}
                else:
                    files[name] = payload
        self._serve(urlsplit(self.path).path, fields, files)

    def _serve(self, path: str, fields: dict[str, str], files: dict[str, bytes]) -> None:
        fake = self.server.fake
        if fake.stall_seconds:
            time.sleep(fake.stall_seconds)
        if path != PATH:
            self._reply(404, b"<html><body>Not Found</body></html>", "text/html")
            return
        cert = x509.load_der_x509_certificate(self.connection.getpeercert(binary_form=True))
        self._reply(200, fake.handle(cert, self.command, fields, files), "text/xml;charset=UTF-8")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # as the real endpoint does
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True
