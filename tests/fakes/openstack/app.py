"""HTTP plumbing of the fake cloud: routing, tokens, errors, faults, the log.

One server on 127.0.0.1 answers for every service and region, under paths a
service catalog points at: ``/identity``, ``/<region>/compute``,
``/<region>/image``, and ``/internal/<region>/...`` (``/admin/...``) for the
other endpoint interfaces. Errors are worded the way each real service words
them (Nova's ``{"itemNotFound": {...}}``, Glance's webob bodies, Keystone's
``{"error": {...}}``). Tests steer it in-process; ``/_fake/...`` does the same
for a fake in another process (the benchmark).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.fakes.openstack.state import CloudState, Region, Token

INTERFACES = ("public", "internal", "admin")
NOVA_FAULTS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
DEFAULT_MESSAGES = {
    401: "The request you have made requires authentication.",
    403: "You are not authorized to perform the requested action.",
    413: "This request was rate-limited.",
    429: "This request was rate-limited.",
    500: "An unexpected error prevented the server from fulfilling your request.",
    503: "The server is currently unavailable. Please try again at a later time.",
}


class HTTPError(Exception):
    """An error answer, rendered in the answering service's own format."""

    def __init__(
        self, status: int, message: str = "", *, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message or DEFAULT_MESSAGES.get(status, TITLES.get(status, "Error"))
        self.retry_after = retry_after
        self.extra = extra


@dataclass
class Logged:
    """One request the fake answered, for tests to assert on."""

    method: str
    path: str
    query: dict[str, list[str]]
    service: str
    region: str
    interface: str
    status: int = 0
    microversion: str = ""


@dataclass
class Fault:
    """An injected misbehaviour for requests matching ``method`` and ``path``.

    ``skip`` matching requests pass first; the next ``times`` get the fault:
    an error ``status`` (with ``retry_after``), ``expire_tokens`` (every token
    is revoked before the request is served), ``delay`` seconds before
    answering, or ``drop`` (the connection closes without an answer).
    """

    path: str
    method: str = ""
    status: int = 0
    message: str = ""
    retry_after: int | None = None
    times: int = 1
    skip: int = 0
    expire_tokens: bool = False
    delay: float = 0.0
    drop: bool = False
    seen: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and re.search(self.path, path) is not None


@dataclass
class Ctx:
    """What a service handler needs about the request it answers."""

    request: Request
    service: str
    interface: str
    region: Region | None
    root: str  # the service's URL for this region and interface
    token: Token | None = None
    microversion: tuple[int, int] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.get_data(as_text=True) or "null")
        except ValueError as exc:
            raise HTTPError(400, f"Malformed request body: {exc}") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "Malformed request body: a JSON object is required")
        return data

    def arg(self, name: str) -> str | None:
        return self.request.args.get(name)


def status_line(code: int) -> str:
    """``403 Forbidden``, not werkzeug's ``403 FORBIDDEN``: clients show the phrase."""
    return f"{code} {HTTPStatus(code).phrase}"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data), status=status_line(status), headers=headers or {}, content_type="application/json"
    )


def retry_after_header(seconds: int, http_date: bool) -> str:
    return formatdate(time.time() + seconds, usegmt=True) if http_date else str(seconds)


class _QuietHandler(WSGIRequestHandler):
    # Keep-alive, as real endpoints do (clients reuse their connections).
    protocol_version = "HTTP/1.1"

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class _Dropped(Exception):
    """Close the connection without answering (a ``drop`` fault)."""


class FakeCloud:
    """The HTTP face of one fake cloud; subclasses say which flavour it is."""

    flavour = "openstack"
    # Retry-After as an HTTP date (Rackspace's Repose) rather than seconds.
    retry_after_date = False

    def __init__(self, regions: tuple[str, ...], token_ttl: float = 3600.0) -> None:
        self.state = CloudState(regions, token_ttl)
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.snapshot_delay = 1.0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.base = ""

    # -- serving -------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        self._server = make_server("127.0.0.1", port, self.wsgi, threaded=True, request_handler=_QuietHandler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            # A short poll makes stop() quick; idle wake-ups cost next to nothing.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openstack",
            daemon=True,
        )
        self._thread.start()
        return self.base

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def auth_url(self) -> str:
        return f"{self.base}/identity"

    def endpoint(self, region: str, service: str, interface: str = "public") -> str:
        prefix = "" if interface == "public" else f"{interface}/"
        return f"{self.base}/{prefix}{region}/{service}"

    # -- test controls ---------------------------------------------------------------

    def inject(self, path: str, **kwargs: Any) -> Fault:
        fault = Fault(path, **kwargs)
        with self.state.lock:
            self.faults.append(fault)
        return fault

    def expire_tokens(self) -> int:
        with self.state.lock:
            return self.state.expire_tokens()

    def logged(self, service: str | None = None, path: str = "", method: str = "") -> list[Logged]:
        with self.state.lock:
            return [
                r
                for r in self.requests
                if (service is None or r.service == service)
                and re.search(path, r.path)
                and (not method or r.method == method)
            ]

    def clear_log(self) -> None:
        with self.state.lock:
            self.requests.clear()

    # -- dispatch ----------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = Request(environ)
        try:
            response = self._answer(request)
        except _Dropped:
            # werkzeug treats a ConnectionError from the app as a dropped client.
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("fault: dropped") from None
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["_fake"]:
            return self.control(request, parts[1:])
        service, interface, region, rest = self._locate(parts)
        entry = Logged(
            request.method, request.path, request.args.to_dict(flat=False), service, region, interface
        )
        with self.state.lock:
            self.requests.append(entry)
            fault = self._fault_for(request)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.drop:
            raise _Dropped
        ctx = Ctx(request, service, interface, None, "")
        try:
            with self.state.lock:
                if fault is not None and fault.expire_tokens:
                    self.state.expire_tokens()
                self.state.advance_all()
                if service not in ("identity",) and region not in self.state.regions:
                    raise HTTPError(404, "The resource could not be found.")
                ctx.region = self.state.regions.get(region)
                ctx.root = self.endpoint(region, service, interface) if ctx.region else self.auth_url
                if fault is not None and fault.status:
                    raise HTTPError(fault.status, fault.message, retry_after=fault.retry_after)
                response = self.route(ctx, rest)
        except HTTPError as err:
            response = self.error_response(ctx, err)
        for key, value in ctx.headers.items():
            response.headers[key] = value
        entry.status = response.status_code
        if ctx.microversion:
            entry.microversion = ".".join(map(str, ctx.microversion))
        return response

    def _fault_for(self, request: Request) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(request.method, request.path):
                fault.seen += 1
                if fault.seen > fault.skip:
                    fault.times -= 1
                    return fault
        return None

    def _locate(self, parts: list[str]) -> tuple[str, str, str, list[str]]:
        if parts[:1] == ["identity"]:
            return "identity", "public", "", parts[1:]
        interface = parts.pop(0) if parts and parts[0] in ("internal", "admin") else "public"
        region = parts.pop(0) if parts else ""
        service = parts.pop(0) if parts else ""
        return service, interface, region, parts

    def route(self, ctx: Ctx, rest: list[str]) -> Response:
        from tests.fakes.openstack import compute, identity, image

        if ctx.service == "identity":
            return identity.route(self, ctx, rest)
        if ctx.service == "compute":
            return compute.route(self, ctx, rest)
        if ctx.service == "image" and self.serves_glance:
            return image.route(self, ctx, rest)
        raise HTTPError(404, "The resource could not be found.")

    serves_glance = True

    def authenticate(self, ctx: Ctx) -> Token:
        token = self.state.valid_token(ctx.request.headers.get("X-Auth-Token"))
        if token is None:
            raise HTTPError(401)
        ctx.token = token
        return token

    # -- errors ------------------------------------------------------------------------

    def error_response(self, ctx: Ctx, err: HTTPError) -> Response:
        headers: dict[str, str] = {}
        if err.retry_after is not None:
            headers["Retry-After"] = retry_after_header(err.retry_after, self.retry_after_date)
        if err.status == 401:
            headers["WWW-Authenticate"] = f'Keystone uri="{self.auth_url}"'
        if ctx.service == "compute" and err.status != 401:
            return json_response(self.nova_fault(err), err.status, headers)
        if ctx.service == "image" and err.status != 401:
            return self.glance_fault(ctx, err, headers)
        return json_response(self.keystone_error(err), err.status, headers)

    def nova_fault(self, err: HTTPError) -> dict[str, Any]:
        body: dict[str, Any] = {"code": err.status, "message": err.message}
        if err.status in (413, 429) and err.retry_after is not None:
            body["retryAfter"] = str(err.retry_after)
        body.update(err.extra)
        return {NOVA_FAULTS.get(err.status, "computeFault"): body}

    def glance_fault(self, ctx: Ctx, err: HTTPError, headers: dict[str, str]) -> Response:
        # webob's error page: JSON when asked for it, plain text otherwise.
        status = f"{err.status} {TITLES.get(err.status, 'Error')}"
        if "application/json" in ctx.request.headers.get("Accept", ""):
            body = {
                "message": f"{err.message}<br /><br />\n\n\n",
                "code": status,
                "title": TITLES.get(err.status),
            }
            return json_response(body, err.status, headers)
        text = f"{status}\n\n{err.message}\n\n   "
        return Response(text, status=status_line(err.status), headers=headers, content_type="text/plain")

    def keystone_error(self, err: HTTPError) -> dict[str, Any]:
        return {"error": {"code": err.status, "message": err.message, "title": TITLES.get(err.status)}}

    # -- the control API (another process's tests and the benchmark) -----------------

    def control(self, request: Request, parts: list[str]) -> Response:
        with self.state.lock:
            if parts == ["info"]:
                return json_response(self.info())
            if parts == ["expire-tokens"] and request.method == "POST":
                return json_response({"expired": self.state.expire_tokens()})
            if parts == ["images"] and request.method == "POST":
                spec = json.loads(request.get_data(as_text=True) or "{}")
                ids = self.seed_images(int(spec["count"]), spec.get("region", ""))
                return json_response({"created": len(ids)})
            if parts == ["touch"] and request.method == "POST":
                spec = json.loads(request.get_data(as_text=True) or "{}")
                ids = self.touch_images(int(spec.get("count", 1)), spec.get("region", ""))
                return json_response({"touched": ids})
            if parts == ["requests"]:
                return json_response({"count": len(self.requests)})
        return json_response({"error": "unknown control request"}, 404)

    def info(self) -> dict[str, Any]:
        """How to reach and log in to this fake (for processes that did not start it)."""
        return {"flavour": self.flavour, "auth_url": self.auth_url, "regions": list(self.state.regions)}

    def seed_images(self, count: int, region: str = "") -> list[str]:
        raise NotImplementedError  # each flavour knows its project and statuses

    def touch_images(self, count: int, region: str = "") -> list[str]:
        raise NotImplementedError
