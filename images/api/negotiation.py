"""Deltacloud's format negotiation (spec §3), as a DRF negotiation class.

``?format=`` wins over Accept; no (or an empty) Accept means XML; ``*/*``
means HTML; q-values order the types and, among equal q-values, a named type
beats a wildcard and the type listed later wins, as the real server did.
Anything else is a 406.
"""

from __future__ import annotations

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation

MEDIA_FORMATS = {
    "application/xml": "xml",
    "text/xml": "xml",
    "application/json": "json",
    "application/xhtml+xml": "html",
    "text/html": "html",
    "*/*": "html",
    "application/*": "xml",
    "text/*": "html",
}
FORMATS = ("xml", "json", "html")


def _parse_accept(header: str) -> list[tuple[float, int, str]]:
    entries = []
    for position, part in enumerate(header.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            entries.append((q, position, media.lower()))
    return entries


def choose_format(query_format: str | None, accept: str, supported: tuple[str, ...] = FORMATS) -> str | None:
    """The format to answer in, or None when nothing acceptable can be produced."""
    if query_format is not None:
        return query_format if query_format in supported else None
    if not accept.strip():
        return "xml" if "xml" in supported else supported[0]
    # Highest q first; among equal q a named type before a wildcard (RFC 9110
    # §12.5.1: `application/json, text/plain, */*` is JSON), then the later entry.
    for _, _, media in sorted(_parse_accept(accept), key=lambda e: (-e[0], e[2].count("*"), -e[1])):
        fmt = MEDIA_FORMATS.get(media)
        if fmt in supported:
            return fmt
    return None


class DeltacloudNegotiation(DefaultContentNegotiation):
    """Picks one of the view's renderers by Deltacloud's rules."""

    def select_renderer(self, request, renderers, format_suffix=None):
        by_format = {r.format: r for r in renderers}
        fmt = choose_format(
            request.query_params.get("format"),
            request.META.get("HTTP_ACCEPT", ""),
            tuple(f for f in FORMATS if f in by_format),
        )
        if fmt is None:
            raise NotAcceptable()
        renderer = by_format[fmt]
        return renderer, renderer.media_type
