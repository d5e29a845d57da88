"""The one escaping helper set every representation uses, and absolute URLs.

Nothing is interpolated into markup without going through ``esc`` (text),
``attr`` (single- or double-quoted attribute values), ``cdata`` or ``seg``
(an id as one URL path segment). HTML pages escape the same way Django's
templates do (``html_text``), so streamed and templated pages are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from django.utils.html import escape as _django_escape

XML_PROLOG = "<?xml version='1.0' encoding='utf-8' ?>\n"


def esc(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def attr(text: Any) -> str:
    return esc(text).replace("'", "&#39;").replace('"', "&quot;")


def cdata(text: Any) -> str:
    return "<![CDATA[" + str(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def html_text(text: Any) -> str:
    """Text or attribute value in an HTML page, escaped as the templates escape."""
    return str(_django_escape("" if text is None else text))


def opening(indent: str, tag: str, href: str, object_id: str) -> str:
    """``<tag href='...' id='...'>``, the first line of every member element."""
    return f"{indent}<{tag} href='{attr(href)}' id='{attr(object_id)}'>"


def seg(object_id: str) -> str:
    """An id as one URL path segment."""
    return quote(object_id, safe="~@!$&'()*+,=:")


def dump_json(data: Any) -> bytes:
    return orjson.dumps(data)


@dataclass(frozen=True)
class Urls:
    """Absolute URLs built from the request's scheme and host."""

    base: str

    def collection(self, name: str) -> str:
        return f"{self.base}/api/{name}"

    def member(self, collection: str, object_id: str) -> str:
        return f"{self.base}/api/{collection}/{seg(object_id)}"
