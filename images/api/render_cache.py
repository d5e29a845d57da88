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


def make_rendered(body: bytes) -> Rendered:
    return Rendered(body, '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"')


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

    def get_or_render(self, key: Hashable, render: Callable[[], bytes]) -> Rendered:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        rendered = make_rendered(render())
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
