"""Deltacloud error documents in the three formats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from images.api import html
from images.api.representations.markup import XML_PROLOG, attr, cdata, dump_json, esc


@dataclass(frozen=True)
class ErrorDoc:
    status: int
    url: str
    driver: str
    provider: str
    message: str
    error_class: str
    params: Sequence[tuple[str, str]]


def _xml(e: ErrorDoc) -> bytes:
    out = [
        XML_PROLOG + f"<error status='{attr(e.status)}' url='{attr(e.url)}'>",
        f"  <backend driver='{attr(e.driver)}' provider='{attr(e.provider)}'></backend>",
        f"  <code>{esc(e.status)}</code>",
        f"  <message>{cdata(e.message)}</message>",
        "  <backtrace>",
        f"    {cdata('')}",
        "  </backtrace>",
        "  <request>",
    ]
    out += [f"    <param name='{attr(k)}'>{cdata(v)}</param>" for k, v in e.params]
    out += ["  </request>", "</error>"]
    return ("\n".join(out) + "\n").encode()


def _json(e: ErrorDoc) -> bytes:
    return dump_json({"code": e.status, "message": e.message, "error": e.error_class})


def _html(e: ErrorDoc) -> bytes:
    return html.error_page(e.status, e.message, e.url, e.driver, e.provider)


FORMS = {"xml": _xml, "json": _json, "html": _html}


def error_document(fmt: str, error: ErrorDoc) -> bytes:
    return FORMS[fmt](error)
