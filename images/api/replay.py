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
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from images.api import auth, context

# The image collection and members, with or without matrix parameters on the root.
_PATH = re.compile(r"^/api(;[^/]*)?/images(/(?!new$)[^/]+)?$")
_KEY_HEADERS = (
    "HTTP_ACCEPT",
    "HTTP_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_DELTACLOUD_DRIVER",
    "HTTP_X_DELTACLOUD_PROVIDER",
    "HTTP_IF_NONE_MATCH",
    "HTTP_AUTHORIZATION",
)


@dataclass(frozen=True)
class Recorded:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    # What the full path read: the selection it resolved and the account row it saw.
    driver: str | None
    provider: str | None
    account_row: tuple
    user_pk: object


def _key(request: HttpRequest) -> tuple | None:
    meta = request.META
    if request.method != "GET" or meta.get("CONTENT_LENGTH") not in (None, "", "0"):
        return None
    if "HTTP_TRANSFER_ENCODING" in meta or not _PATH.match(request.path_info):
        return None
    if not meta.get("HTTP_AUTHORIZATION", "").startswith("Basic "):
        return None
    headers = [meta.get(name) for name in _KEY_HEADERS]
    return (request.path_info, meta.get("QUERY_STRING", ""), meta.get("wsgi.url_scheme", ""), *headers)


def _remembered(header: str) -> tuple[object, str] | None:
    """(user pk, fingerprint) of a credential verified recently, else None."""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    remembered = cache.get(auth.cache_key(username, password))
    return (remembered[0], remembered[1]) if remembered else None


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


class ReplayMiddleware:
    """First in the chain: a recorded answer still valid is sent as it was."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = _key(request)
        if key is None:
            return self.get_response(request)
        entry = replay_cache.get(key)
        if entry is not None:
            response = _replay(request, entry)
            if response is not None:
                return response
        response = self.get_response(request)
        _record(request, key, response)
        return response


def _replay(request: HttpRequest, entry: Recorded) -> HttpResponse | None:
    remembered = _remembered(request.META["HTTP_AUTHORIZATION"])
    if remembered is None or remembered[0] != entry.user_pk:
        return None
    values = context.fetch(entry.driver, entry.provider, entry.user_pk)
    # If the answer cannot be replayed, the full path uses this row instead of reading it again.
    request.dc_fetched = (entry.driver, entry.provider, entry.user_pk, values)
    if values is None:
        return None
    accounts, users = context.converted_rows()
    split = len(accounts.attnames)
    if tuple(values[:split]) != entry.account_row:
        return None
    user = users.model_from(values[split:])
    if not user.is_active or not hmac.compare_digest(auth.fingerprint(user), remembered[1]):
        return None
    response = HttpResponse(entry.body, status=entry.status)
    del response["Content-Type"]  # a 304 has none: the recorded headers say
    for name, value in entry.headers:
        response[name] = value
    return response


def _record(request: HttpRequest, key: tuple, response: HttpResponse) -> None:
    if response.status_code not in (200, 304) or response.streaming or response.cookies:
        return
    ctx = getattr(request, "dc_context", None)
    account = ctx.account if ctx is not None else None
    row = getattr(account, "dw_row", None)
    user = getattr(request, "dc_user", None)
    if row is None or user is None:
        return  # resolved without the one query (a fresh verification): nothing to check against
    selection = getattr(request, "dc_selection", (None, None))
    replay_cache.put(
        key,
        Recorded(
            response.status_code,
            tuple(response.items()),
            response.content,
            selection[0],
            selection[1],
            row,
            user.pk,
        ),
    )
