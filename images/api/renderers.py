"""The three formats Deltacloud speaks. Views render documents themselves (and
cache the bytes); these classes carry the media type and format DRF's
negotiation chooses between."""

from rest_framework.renderers import BaseRenderer


class _PassThrough(BaseRenderer):
    charset = None  # Deltacloud sent bare media types, no charset parameter

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if isinstance(data, bytes):
            return data
        raise TypeError("deltaweb views render documents themselves")


class XMLRenderer(_PassThrough):
    media_type = "application/xml"
    format = "xml"


class JSONRenderer(_PassThrough):
    media_type = "application/json"
    format = "json"


class HTMLRenderer(_PassThrough):
    media_type = "text/html"
    format = "html"


CONTENT_TYPES = {r.format: r.media_type for r in (XMLRenderer, JSONRenderer, HTMLRenderer)}
