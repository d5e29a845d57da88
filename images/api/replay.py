"""Answering a repeated image read with the exact response it got last time.

Deltacloud clients poll the same few URLs with the same credentials. Once a
read of ``/api/images`` or one image has been answered in full (every
middleware, negotiation, rendering), the same request (path, query, the
headers that select the account, format and validators, the same Basic
credential) can be answered again with those bytes and headers as long as
the account row, and with it the catalog version and the sync times, is still
what it was. Checking that is the one query the full path makes anyway (the
account with the user row that confirms the remembered credential), so a
repeat costs that query and no framework work. Anything else, or any
difference, takes the full path, which records its answer for next time.

The replay runs in front of Django (``ReplayFront``, wrapped around the WSGI
application in ``deltaweb/wsgi.py``): a valid recorded answer costs the query,
the credential check and the bytes, not Django's request handling. The
middleware records, and replays where no front runs (the test client).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

from images.api import context

# The image collection and members, with or without matrix parameters on the root.
_PATH = re.compile(r"^/api(;[^/]*)?/images(/(?!new$)[^/]+)?$")
# Routes that describe a driver: without ?force_auth their answer depends on the request alone.
_DESCRIPTIVE = re.compile(
    r"^/api(;[^/]*)?(/|/hardware_profiles(/[^/]+)?|/instance_states|/drivers(/[^/]+)?)?$"
)
_KEY_HEADERS = (
    "HTTP_ACCEPT",
    "HTTP_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_DELTACLOUD_DRIVER",
    "HTTP_X_DELTACLOUD_PROVIDER",
    "HTTP_IF_NONE_MATCH",
)
_SELECTING = frozenset(("HTTP_X_DELTACLOUD_DRIVER", "HTTP_X_DELTACLOUD_PROVIDER"))


@dataclass(frozen=True)
class Recorded:
    status: int
    status_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    # What the full path read: the selection it resolved, the version of the rows it
    # saw (context.Fetched) and the user the credential was verified for; None when it
    # read nothing (a description of a driver): valid as long as the process.
    driver: str | None
    provider: str | None
    version: tuple | None
    user_pk: object
    # The credential was verified against the user row of that version: it holds
    # while the row is unchanged, but is verified again as often as auth.py would.
    expires: float


def key_of(meta: Mapping[str, Any]) -> tuple | None:
    """What selects the answer (a WSGI environ or ``request.META``); None when it may not be replayed."""
    if meta.get("REQUEST_METHOD") != "GET" or meta.get("CONTENT_LENGTH") not in (None, "", "0"):
        return None
    path = meta.get("PATH_INFO", "")
    if "HTTP_TRANSFER_ENCODING" in meta:
        return None
    if _PATH.match(path):
        if not meta.get("HTTP_AUTHORIZATION", "").startswith("Basic "):
            return None
    elif not _DESCRIPTIVE.match(path):
        return None
    # Other Deltacloud headers are checked by the full path (guard.py): never skip that.
    if any(name.startswith("HTTP_X_DELTACLOUD_") and name not in _SELECTING for name in meta):
        return None
    headers = [meta.get(name) for name in _KEY_HEADERS]
    scope = (meta.get("QUERY_STRING", ""), meta.get("SCRIPT_NAME", ""), meta.get("wsgi.url_scheme", ""))
    return (path, *scope, *headers, _digest(meta.get("HTTP_AUTHORIZATION", "")))


_SECRET = hashlib.sha256(b"replay:" + settings.SECRET_KEY.encode()).digest()


def _digest(credential: str) -> bytes:
    """The credential in the key, never itself (recorded answers stay in memory)."""
    return hashlib.blake2b(credential.encode("latin-1", "replace"), key=_SECRET, digest_size=16).digest()


class ReplayCache:
    """Recorded answers, least recently used out first, bounded in bytes."""

    def __init__(self, max_bytes: int, max_item: int) -> None:
        self.max_bytes, self.max_item = max_bytes, max_item
        self._entries: OrderedDict[tuple, Recorded] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Recorded | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple, entry: Recorded) -> None:
        if len(entry.body) > self.max_item:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old.body)
            self._entries[key] = entry
            self._size += len(entry.body)
            while self._size > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped.body)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0


replay_cache = ReplayCache(settings.DELTAWEB_REPLAY_CACHE_BYTES, settings.DELTAWEB_REPLAY_MAX_ITEM)


class ReplayFront:
    """WSGI in front of Django: a valid recorded answer costs the one query and
    nothing else (no request or response objects, signals or middleware)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        key = key_of(environ)
        entry = replay_cache.get(key) if key is not None else None
        if entry is not None:
            # What request_started does for the connection this path uses.
            connection.close_if_unusable_or_obsolete()
            try:
                valid, fetched = _check(environ, entry)
            except DatabaseError:
                valid, fetched = False, None  # the full path meets the error again and answers it
            if valid:
                start_response(entry.status_line, list(entry.headers))
                return [entry.body]
            environ[_LOOKED] = fetched
        return self.app(environ, start_response)


class ReplayMiddleware:
    """First in the chain: records full answers (and replays them where no front runs: tests, runserver)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        key = key_of(meta)
        if key is None:
            return self.get_response(request)
        if _LOOKED in meta:  # the front has just checked: the row it read serves the full path
            request.dc_fetched = meta[_LOOKED]
        elif (entry := replay_cache.get(key)) is not None:
            valid, request.dc_fetched = _check(meta, entry)
            if valid:
                return _response(entry)
        response = self.get_response(request)
        _record(request, key, response)
        return response


_LOOKED = "deltaweb.replay.looked"


def _check(meta: Mapping[str, Any], entry: Recorded) -> tuple[bool, context.Fetched | None]:
    """Whether the recorded answer still holds (the same credential, verified
    against the same password, and the rows it came from unchanged), and what
    the one query read, for the full path when it does not."""
    if entry.version is None:
        return True, None
    if time.monotonic() > entry.expires:
        return False, None
    fetched = context.fetch(entry.driver, entry.provider, entry.user_pk)
    return fetched.version == entry.version, fetched


def _response(entry: Recorded) -> HttpResponse:
    response = HttpResponse(entry.body, status=entry.status)
    del response["Content-Type"]  # a 304 has none: the recorded headers say
    for name, value in entry.headers:
        response[name] = value
    return response


def _record(request: HttpRequest, key: tuple, response: HttpResponse) -> None:
    if response.status_code not in (200, 304) or response.streaming or response.cookies:
        return
    if "cookie" in response.get("Vary", "").lower():
        return
    if getattr(request, "dc_request_only", False):  # set by context.build_context
        version, user_pk, expires = None, None, 0.0
    elif _PATH.match(request.META.get("PATH_INFO", "")):
        ctx = getattr(request, "dc_context", None)
        version = getattr(ctx.account if ctx is not None else None, "dw_version", None)
        user = getattr(request, "dc_user", None)
        if version is None or user is None:
            return  # resolved without the one query (a fresh verification): nothing to check against
        user_pk, expires = user.pk, time.monotonic() + settings.DELTAWEB_AUTH_CACHE_SECONDS
    else:
        return
    driver, provider = getattr(request, "dc_selection", (None, None))
    status_line = f"{response.status_code} {response.reason_phrase}"
    entry = Recorded(
        response.status_code,
        status_line,
        tuple(response.items()),
        response.content,
        driver,
        provider,
        version,
        user_pk,
        expires,
    )
    replay_cache.put(key, entry)
