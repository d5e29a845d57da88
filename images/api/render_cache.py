"""Rendered documents kept per process, keyed by catalog version.

The catalog changes only on sync, create or delete, and each of those bumps
the account's ``catalog_version``; a key that includes the version can never
serve stale bytes, so entries need no invalidation, only eviction.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str
    # Headers that belong to the document (a page's Link), kept with it.
    headers: tuple[tuple[str, str], ...] = ()


Document = bytes | tuple[bytes, tuple[tuple[str, str], ...]]


def make_rendered(document: Document) -> Rendered:
    body, headers = (document, ()) if isinstance(document, bytes) else document
    return Rendered(body, '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"', headers)


def key_etag(key: Hashable) -> str:
    """A weak ETag for a document too big to keep: its key names one catalog
    version, so equal keys mean equal documents in every process."""
    return 'W/"' + hashlib.md5(repr(key).encode(), usedforsecurity=False).hexdigest() + '"'


class RenderCache:
    """A byte-budgeted LRU; thread-safe for threaded servers."""

    def __init__(self, max_bytes: int, max_item: int) -> None:
        self.max_bytes = max_bytes
        self.max_item = max_item
        self._items: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Rendered | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def get_or_render(self, key: Hashable, render: Callable[[], Document]) -> Rendered:
        found = self.get(key)
        return found if found is not None else self.put(key, make_rendered(render()))

    def put(self, key: Hashable, rendered: Rendered) -> Rendered:
        size = len(rendered.body)
        if size <= self.max_item:
            with self._lock:
                if key not in self._items:
                    self._items[key] = rendered
                    self._size += size
                while self._size > self.max_bytes and self._items:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old.body)
        return rendered

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


render_cache = RenderCache(settings.DELTAWEB_RENDER_CACHE_BYTES, settings.DELTAWEB_RENDER_CACHE_MAX_ITEM)
