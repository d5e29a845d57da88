"""A stateful oVirt / RHV engine over HTTPS on 127.0.0.1, for ovirtsdk4 to talk to.

No engine simulator exists, so this one models what the deltaweb driver uses:
SSO password grant, the API root, data centers, clusters, templates (search,
paging, add from a VM, delete), VMs and the audit log (events). Every XML
document is written by ovirtsdk4's own writers and every request body is read
by its readers, so the shapes are the SDK's. Refusals carry the real engine's
wording (see tests/fixtures/rhevm/ for what a RHEV-M said in 2013).

New templates are ``locked`` until ``create_delay`` has passed, then ``ok``, or
``illegal`` with an error event if a failure was queued with ``fail_next_create``.
The template's VM is ``image_locked`` meanwhile, as on a real engine.

Standalone: ``python -m tests.fakes.ovirt_engine [--port N] [--templates N]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import ovirtsdk4.readers  # registers the readers
import ovirtsdk4.writers  # noqa: F401  (registers the writers)
from ovirtsdk4 import reader, types, writer

from tests.fakes.ovirt_engine_state import (
    BLANK_ID,
    COLLECTIONS,
    PREFIX,
    Engine,
    EngineFault,
)
from tests.fakes.tls_ca import ServerTLS, make_ca

# What the engine's application server answers outside the API (as recorded in 2013).
NOT_FOUND_PAGE = (
    b"<html><head><title>JBoss Web/7.0.16..Final-redhat-1 - Error report</title></head><body>"
    b"<h1>HTTP Status 404 - </h1><p><b>description</b> <u>The requested resource () is not "
    b"available.</u></p></body></html>"
)

__all__ = ["BLANK_ID", "Engine", "EngineFault", "EngineServer", "running_engine", "seed"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        engine = self.server.engine
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with engine.lock:
            engine.requests.append((method, url.path, query))
        if engine.latency:
            time.sleep(engine.latency)
        if url.path == "/ovirt-engine/sso/oauth/token" and method == "POST":
            return self._token(parse_qs(body.decode()))
        if url.path == "/ovirt-engine/services/sso-logout" and method == "POST":
            token = parse_qs(body.decode()).get("token", [""])[0]
            with engine.lock:
                engine.tokens.pop(token, None)
            return self._send(200, b"{}", "application/json")
        if not (url.path + "/").startswith(PREFIX + "/"):
            return self._send(404, NOT_FOUND_PAGE, "text/html;charset=utf-8")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in engine.tokens:
            return self._send(401, b"", "text/html", {"WWW-Authenticate": 'Bearer realm="RESTAPI"'})
        headers: dict[str, str] = {}
        try:
            with engine.lock:
                engine.settle()
                status, doc = self._api(method, url.path[len(PREFIX) :].strip("/"), query, body, headers)
        except EngineFault as fault:
            status, doc = fault.status, types.Fault(reason=fault.reason, detail=fault.detail)
        except Exception as error:  # noqa: BLE001  (a fake bug must be loud, not a hang)
            status, doc = 500, types.Fault(reason="Internal Server Error", detail=repr(error))
        payload = b"" if doc is None else self._write(doc)
        self._send(status, payload, "application/xml;charset=UTF-8", headers)

    @staticmethod
    def _write(doc: object) -> bytes:
        if isinstance(doc, tuple):  # (root tag, items)
            return writer.Writer.write(doc[1], root=doc[0], indent=True).encode()
        return writer.Writer.write(doc, indent=True).encode()

    def _token(self, form: dict[str, list[str]]) -> None:
        engine = self.server.engine
        value = {key: values[-1] for key, values in form.items()}
        if value.get("grant_type") != "password" or "ovirt-app-api" not in value.get("scope", ""):
            answer = {"error_code": "invalid_request", "error": "Invalid grant_type or scope."}
            return self._send(400, json.dumps(answer).encode(), "application/json")
        user = value.get("username", "")
        with engine.lock:
            if user not in engine.users or engine.users[user] != value.get("password"):
                answer = {
                    "error_code": "access_denied",
                    "error": f"Cannot authenticate user '{user}': The username or password is incorrect..",
                }
                return self._send(400, json.dumps(answer).encode(), "application/json")
            token = secrets.token_urlsafe(24)
            engine.tokens[token] = user
        expires = int((time.time() + 3600) * 1000)
        answer = {"access_token": token, "scope": "ovirt-app-api", "exp": str(expires)}
        answer["token_type"] = "bearer"
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _api(self, method: str, path: str, query: dict, body: bytes, headers: dict) -> tuple:
        engine = self.server.engine
        if path == "" and method == "GET":
            product = types.ProductInfo(
                name="oVirt Engine", vendor="ovirt.org", version=types.Version(major=4, minor=5)
            )
            return 200, types.Api(product_info=product, time=datetime.datetime.now(datetime.UTC))
        kind, _, obj_id = path.partition("/")
        if kind not in COLLECTIONS or "/" in obj_id:
            return 404, None
        listing, doc = COLLECTIONS[kind]
        items = listing(engine)
        if not obj_id and method == "GET":
            root = "data_centers" if kind == "datacenters" else kind
            return 200, (root, [doc(engine, i) for i in engine.search(kind, items, query)])
        if kind == "templates" and not obj_id and method == "POST":
            template = engine.create_template(reader.Reader.read(body))
            headers["Location"] = f"{self._base()}{PREFIX}/templates/{template.id}"
            return 201, doc(engine, template)
        item = next((i for i in items if str(i.id) == obj_id), None)
        if method == "GET" and obj_id:
            if item is None:
                raise EngineFault(404, f"Entity not found: {obj_id}")
            return 200, doc(engine, item)
        if kind == "templates" and method == "DELETE" and obj_id:
            engine.delete_template(obj_id)
            return 200, None
        raise EngineFault(405, f"Method {method} is not allowed on {kind}.", "Not Allowed")

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"https://{host}:{port}"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    engine: Engine

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that reject our certificate hang up mid-handshake; that is the test


class EngineServer:
    """Serves an ``Engine`` over HTTPS on 127.0.0.1 from a background thread."""

    def __init__(self, engine: Engine, tls: ServerTLS, *, port: int = 0) -> None:
        self.engine, self.tls = engine, tls
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.engine = engine
        context = tls.server_context()
        self._httpd.socket = context.wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The API URL an account points at (what ``ovirtsdk4.Connection(url=...)`` takes)."""
        return f"https://127.0.0.1:{self._httpd.server_address[1]}{PREFIX}"

    def start(self) -> EngineServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def seed(engine: Engine, *, templates: int = 3, datacenter: str = "Default") -> dict[str, str]:
    """A data center with one cluster, ``templates`` templates, a VM that is down and one up."""
    dc = engine.add_datacenter(datacenter)
    cluster = engine.add_cluster(f"{datacenter}-cluster", dc)
    made = [
        engine.add_template(f"tpl-{n:04d}", cluster, description=f"template {n}", os_type="rhel_8x64")
        for n in range(1, templates + 1)
    ]
    base = made[0].id if made else BLANK_ID
    down = engine.add_vm("vm-down", cluster, status="down", template_id=base)
    up = engine.add_vm("vm-up", cluster, status="up", template_id=base)
    return {"datacenter": dc, "cluster": cluster, "vm_down": down.id, "vm_up": up.id}


@contextmanager
def running_engine(
    directory: Path, *, templates: int = 3, create_delay: float = 1.0
) -> Iterator[tuple[Engine, EngineServer, dict[str, str]]]:
    """A seeded engine served over HTTPS with a fresh CA under ``directory``."""
    engine = Engine(create_delay=create_delay)
    ids = seed(engine, templates=templates)
    with EngineServer(engine, make_ca(directory)) as server:
        yield engine, server, ids


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--templates", type=int, default=3)
    parser.add_argument("--create-delay", type=float, default=5.0)
    parser.add_argument("--user", default="admin@internal")
    parser.add_argument("--password", default="secret")
    args = parser.parse_args(argv)
    engine = Engine(users={args.user: args.password}, create_delay=args.create_delay)
    ids = seed(engine, templates=args.templates)
    tls = make_ca(Path(tempfile.mkdtemp(prefix="ovirt-engine-")))
    with EngineServer(engine, tls, port=args.port) as server:
        print(f"url={server.url}\nca_file={tls.ca_file}\nuser={args.user}", flush=True)
        print(f"vm_down={ids['vm_down']}\nvm_up={ids['vm_up']}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
