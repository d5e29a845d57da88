"""A resource's three forms (XML, JSON, HTML), member and collection, in one place.

A resource module subclasses ``Representation`` and says how one item looks
in each format; the collection documents, streamed or whole, are built here
once. Formats are looked up by name (``member_xml``, ``stream_json``...), so
no caller ever branches on the format.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from images.api import html
from images.api.representations.markup import XML_PROLOG, Urls, dump_json, html_text

# Rows per chunk of a streamed body: big enough to keep writes few.
CHUNK_ROWS = 500
_SENTINEL = "\x00dw-item\x00"


@dataclass(frozen=True)
class Env:
    """What a rendering needs besides the data: URLs, the driver, the page path,
    and the resource's options (e.g. whether images can be destroyed)."""

    urls: Urls
    driver: str
    provider: str | None
    path: str
    options: Any = None

    def page(self, template: str, title: str, **context: Any) -> bytes:
        return html.page(
            template,
            title=title,
            driver=self.driver,
            provider=self.provider,
            base=self.urls.base,
            path=self.path,
            **context,
        )


@functools.lru_cache(maxsize=256)
def _page_frame(title: str, driver: str, provider: str | None, base: str, path: str) -> tuple[str, str]:
    """The collection page around its items, split where the items go."""
    env = Env(Urls(base), driver, provider, path)
    sample = {"href": _SENTINEL, "title": "", "subtitle": "", "badge": ""}
    text = env.page("collection.html", title, items=[sample]).decode()
    start = text.index(f'<li><a href="{_SENTINEL}"')
    end = text.index("</li>\n", start) + len("</li>\n")
    return text[:start], text[end:]


def line(href: str, title: str, subtitle: str, badge: str = "", status: str = "") -> dict[str, str]:
    """An item as one line of a collection page."""
    return {"href": href, "title": title, "subtitle": subtitle, "badge": badge, "status": status}


def html_entry(item: Mapping[str, Any]) -> str:
    """One ``<li>`` of a collection page, exactly as collection.html writes it."""
    badge = ""
    if item.get("badge"):
        badge = f'<span class="badge {html_text(item.get("status", ""))}">{html_text(item["badge"])}</span>'
    return (
        f'<li><a href="{html_text(item["href"])}"><span><span class="t">{html_text(item["title"])}</span>'
        f'<br><span class="sub">{html_text(item["subtitle"])}</span></span>{badge}</a></li>\n'
    )


def _chunks(parts: Iterable[str], size: int = CHUNK_ROWS) -> Iterator[bytes]:
    batch: list[str] = []
    for part in parts:
        batch.append(part)
        if len(batch) >= size:
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()


class Representation:
    """Subclasses set the names and define ``xml``, ``json``, ``entry`` and ``page``.

    A resource defines only the forms its routes serve (instance states have no
    page of their own, a run result is never listed, the entry point builds its
    XML whole); the others stay abstract here, and no route asks for them.
    """

    plural: str
    singular: str
    title: str

    # -- one item, per format (subclasses) --
    def xml(self, item: Any, env: Env, indent: str = "") -> str:
        raise NotImplementedError

    def json(self, item: Any, env: Env) -> dict[str, Any]:
        raise NotImplementedError

    def entry(self, item: Any, env: Env) -> dict[str, Any]:
        """The item as a line of the HTML collection page."""
        raise NotImplementedError

    def page(self, item: Any, env: Env) -> bytes:
        """The item's own HTML page."""
        raise NotImplementedError

    # -- documents --
    def member(self, fmt: str, item: Any, env: Env) -> bytes:
        return getattr(self, f"member_{fmt}")(item, env)

    def member_xml(self, item: Any, env: Env) -> bytes:
        return f"{XML_PROLOG}{self.xml(item, env)}\n".encode()

    def member_json(self, item: Any, env: Env) -> bytes:
        return dump_json({self.singular: self.json(item, env)})

    def member_html(self, item: Any, env: Env) -> bytes:
        return self.page(item, env)

    def collection(
        self, fmt: str, items: Iterable[Any], env: Env, extra: Mapping[str, Any] | None = None
    ) -> bytes:
        return b"".join(self.stream(fmt, items, env, extra))

    def stream(
        self, fmt: str, items: Iterable[Any], env: Env, extra: Mapping[str, Any] | None = None
    ) -> Iterator[bytes]:
        """The collection document in chunks; ``extra`` adds top-level JSON keys
        (the next page, the changes token). XML keeps only item children."""
        return getattr(self, f"stream_{fmt}")(items, env, extra or {})

    def stream_xml(self, items: Iterable[Any], env: Env, extra: Mapping[str, Any]) -> Iterator[bytes]:
        yield f"{XML_PROLOG}<{self.plural}>\n".encode()
        yield from _chunks(self.xml(item, env, "  ") + "\n" for item in items)
        yield f"</{self.plural}>\n".encode()

    def stream_json(self, items: Iterable[Any], env: Env, extra: Mapping[str, Any]) -> Iterator[bytes]:
        yield f'{{"{self.plural}":['.encode()
        first = True
        for chunk in _chunks(self._json_items(items, env)):
            yield chunk[1:] if first else chunk
            first = False
        tail = b"".join(b"," + dump_json(k) + b":" + dump_json(v) for k, v in extra.items())
        yield b"]" + tail + b"}"

    def _json_items(self, items: Iterable[Any], env: Env) -> Iterator[str]:
        for item in items:
            yield "," + dump_json(self.json(item, env)).decode()

    def stream_html(self, items: Iterable[Any], env: Env, extra: Mapping[str, Any]) -> Iterator[bytes]:
        head, tail = _page_frame(self.title, env.driver, env.provider, env.urls.base, env.path)
        yield head.encode()
        empty = True
        for chunk in _chunks(html_entry(self.entry(item, env)) for item in items):
            empty = False
            yield chunk
        if empty:
            yield b'<li class="empty">Nothing here.</li>'
        yield tail.encode()
