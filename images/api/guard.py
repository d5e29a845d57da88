"""The API's edge: what no view, driver or database should ever see is refused here.

``EdgeGuardMiddleware`` runs first in ``MIDDLEWARE``. Before any other work
(authentication included) it refuses, as Deltacloud error documents in the
negotiated format:

* bodies over ``DELTAWEB_MAX_BODY_BYTES`` (413, from ``Content-Length``, before
  a byte is read) and bodies without a length (chunked: 411);
* a ``Host`` outside ``ALLOWED_HOSTS`` (400);
* paths that are not UTF-8 once unescaped, or hold control characters, or
  segments (ids, matrix parameters) over ``DELTAWEB_MAX_ID_BYTES`` (400);
* NUL in query parameters, control characters in ``X-Deltacloud-*`` headers;
* JSON bodies that are not an object, nest deeper than
  ``DELTAWEB_MAX_JSON_DEPTH``, are not UTF-8 or hold NUL/lone surrogates;
  forms with too many fields or NUL (400).

Behind it, whatever Django itself would answer with one of its own pages on an
API path (its debug pages under ``DEBUG``, its plain 400/403 pages) becomes an
error document too. It also adds the Content-Security-Policy to HTML pages,
and applies the login throttle (``images.api.throttle``) to the admin login.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import unquote_to_bytes, urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent
from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse
from django.views.debug import ExceptionReporter

from images.api import throttle
from images.api.exceptions import GENERIC, _format_of, error_response
from images.api.middleware import is_api_path

logger = logging.getLogger(__name__)

JSON_TYPES = ("application/json",)
# Parameters naming a provider object: checked like ids in the path, wherever they come from.
ID_PARAMS = frozenset({"id", "instance_id", "image_id", "realm_id", "hwp_id"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Markers of the pages Django writes itself: its debug pages (technical 404/500)
# and its default 400/403/500 views.
DJANGO_PAGE_MARKERS = (
    b'<meta name="robots" content="NONE,NOARCHIVE">',
    b"<title>Bad Request (400)</title>",
    b"<title>403 Forbidden</title>",
    b"<title>Server Error (500)</title>",
    b"<title>Not Found</title>",
)


class Refused(Exception):
    """A request the edge answers itself."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _MarkingReporter(ExceptionReporter):
    """Django's debug 500/400 pages on API paths: remembered, so the response is replaced."""

    def __init__(self, request, exc_type, exc_value, tb, *args, **kwargs) -> None:
        super().__init__(request, exc_type, exc_value, tb, *args, **kwargs)
        if request is not None:
            request.dc_technical_page = True

    def get_traceback_html(self) -> str:
        return ""  # never rendered: settings and backtraces stay out of any response

    def get_traceback_text(self) -> str:
        return ""


def _has_control(text: str, allowed: str = "") -> bool:
    return any((ord(c) < 32 or ord(c) == 127) and c not in allowed for c in text)


def _check_id_param(name: str, value: object) -> None:
    if name not in ID_PARAMS or not isinstance(value, str):
        return
    limit = settings.DELTAWEB_MAX_ID_BYTES
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise Refused(400, f"Parameter '{name}' is longer than {limit} bytes")
    if _has_control(value):
        raise Refused(400, f"Parameter '{name}' contains control characters")


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, f"The {what} is not valid UTF-8") from None


class EdgeGuardMiddleware:
    """First in MIDDLEWARE: refuses what the rest must never see, cleans up what Django answers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._admin_login: str | None = None

    # -- request ---------------------------------------------------------------

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = is_api_path(request.path_info)
        if api:
            request.exception_reporter_class = _MarkingReporter
        try:
            self._check_request(request, api)
            if not api and request.method == "POST" and request.path_info == self.admin_login_path:
                return self._add_headers(self._admin_login_attempt(request))
        except Refused as refused:
            return self._add_headers(self._refusal(request, refused, api))
        response = self.get_response(request)
        if api and self._is_django_page(request, response):
            response = error_response(
                request, response.status_code, GENERIC.get(response.status_code, "Error"), _format_of(request)
            )
        return self._add_headers(response)

    @property
    def admin_login_path(self) -> str:
        if self._admin_login is None:
            self._admin_login = reverse("admin:login")
        return self._admin_login

    def _check_request(self, request: HttpRequest, api: bool) -> None:
        self._check_body_size(request)
        try:
            request.get_host()
        except DisallowedHost:
            raise Refused(400, "Invalid Host header") from None
        if not api:
            return
        self._check_path(request)
        self._check_query(request)
        self._check_headers(request)
        self._check_body(request)

    @staticmethod
    def _check_body_size(request: HttpRequest) -> None:
        meta = request.META
        if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise Refused(411, "Send the request body with a Content-Length")
        raw = meta.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            raise Refused(400, "Invalid Content-Length") from None
        if length < 0:
            raise Refused(400, "Invalid Content-Length")
        limit = settings.DELTAWEB_MAX_BODY_BYTES
        if length > limit:
            raise Refused(413, f"The request body is larger than {limit} bytes")

    @staticmethod
    def _check_path(request: HttpRequest) -> None:
        # Django decodes PATH_INFO, re-escaping what is not UTF-8; gunicorn's RAW_URI has it as sent.
        raw_uri = request.META.get("RAW_URI")
        path = request.path_info
        if raw_uri:
            path = _utf8(unquote_to_bytes(urlsplit(raw_uri).path), "request path")
        if _has_control(path):
            raise Refused(400, "The request path contains control characters")
        limit = settings.DELTAWEB_MAX_ID_BYTES
        segments = path.split("/")
        for position, segment in enumerate(segments):
            # /api/<collection>/<id>: the id is one value whatever it contains (`;` too);
            # elsewhere each `;`-separated piece (a name, a matrix parameter) is.
            pieces = [segment] if position == 3 else segment.split(";")
            if any(len(piece.encode()) > limit for piece in pieces):
                raise Refused(400, f"A path segment or id is longer than {limit} bytes")

    @staticmethod
    def _check_query(request: HttpRequest) -> None:
        try:
            raw_query = get_bytes_from_wsgi(request.META, "QUERY_STRING", "")
        except UnicodeEncodeError:  # not from a WSGI server: already text
            raw_query = b""
        _utf8(unquote_to_bytes(raw_query), "query string")
        limit = settings.DELTAWEB_MAX_PARAM_BYTES
        for name, values in request.GET.lists():
            for text in (name, *values):
                if "\x00" in text:
                    raise Refused(400, f"Parameter '{name[:64]}' contains a NUL character")
                if len(text.encode()) > limit:
                    raise Refused(400, f"Parameter '{name[:64]}' is longer than {limit} bytes")
            for value in values:
                _check_id_param(name, value)

    @staticmethod
    def _check_headers(request: HttpRequest) -> None:
        limit = settings.DELTAWEB_MAX_ID_BYTES
        for key, value in request.META.items():
            if not key.startswith("HTTP_X_DELTACLOUD_"):
                continue
            name = key[5:].replace("_", "-").title()
            text = _utf8(value.encode("latin-1", "replace"), f"{name} header")
            if _has_control(text):
                raise Refused(400, f"The {name} header contains control characters")
            if len(text.encode()) > limit:
                raise Refused(400, f"The {name} header is longer than {limit} bytes")

    def _check_body(self, request: HttpRequest) -> None:
        if not int(request.META.get("CONTENT_LENGTH") or 0):
            return
        content_type = (request.content_type or "").lower()
        if content_type in JSON_TYPES or content_type.endswith("+json"):
            self._check_json(request.body)
        elif content_type in FORM_TYPES and request.method == "POST":
            try:
                fields = request.POST
            except TooManyFieldsSent:
                raise Refused(400, "The form has too many fields") from None
            except RequestDataTooBig:
                raise Refused(413, "The request body is too large") from None
            except (MultiPartParserError, UnicodeDecodeError, ValueError):
                raise Refused(400, "The request body is not a valid form") from None
            for name, values in fields.lists():
                if any("\x00" in text for text in (name, *values)):
                    raise Refused(400, f"Parameter '{name[:64]}' contains a NUL character")
                for value in values:
                    _check_id_param(name, value)

    @staticmethod
    def _check_json(body: bytes) -> None:
        text = _utf8(body, "JSON body")
        try:
            document = json.loads(text)
        except RecursionError:
            raise Refused(400, "The JSON body nests too deeply") from None
        except ValueError:
            raise Refused(400, "The request body is not valid JSON") from None
        if not isinstance(document, dict):
            raise Refused(400, "The JSON body must be an object")
        for name, value in document.items():
            _check_id_param(name, value)
        limit = settings.DELTAWEB_MAX_JSON_DEPTH
        stack: list[tuple[object, int]] = [(document, 1)]
        while stack:
            value, depth = stack.pop()
            if depth > limit:
                raise Refused(400, f"The JSON body nests deeper than {limit} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    stack.append((key, depth))
                    stack.append((item, depth + 1))
            elif isinstance(value, list):
                stack.extend((item, depth + 1) for item in value)
            elif isinstance(value, str):
                if "\x00" in value:
                    raise Refused(400, "The JSON body contains a NUL character")
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise Refused(400, "The JSON body contains a lone surrogate") from None

    # -- admin login ---------------------------------------------------------------

    def _admin_login_attempt(self, request: HttpRequest) -> HttpResponse:
        """The console's login form: throttled like the API's Basic credentials."""
        address = throttle.client_address(request)
        try:
            username = request.POST.get("username", "")
        except (RequestDataTooBig, TooManyFieldsSent, MultiPartParserError):
            raise Refused(400, "Bad Request") from None
        wait = throttle.count_attempt(address, username)
        if wait is not None:
            response = HttpResponse(
                "Too many logins; try again later.", status=429, content_type="text/plain"
            )
            response["Retry-After"] = str(wait)
            return response
        return self.get_response(request)

    # -- responses -------------------------------------------------------------------

    @staticmethod
    def _refusal(request: HttpRequest, refused: Refused, api: bool) -> HttpResponse:
        if refused.status >= 500:
            logger.warning("%s %s refused: %s", request.method, request.path, refused.message)
        if not api:
            response = HttpResponse(refused.message, status=refused.status, content_type="text/plain")
        else:
            # The error document echoes the query but never reads the (refused) body.
            request._mark_post_parse_error()
            request.GET = _printable(request.GET)
            request.path = _printable_text(request.path)
            response = error_response(request, refused.status, refused.message, _format_of(request))
        for name, value in refused.headers.items():
            response[name] = value
        if refused.status in (411, 413):
            response["Connection"] = "close"
        return response

    @staticmethod
    def _is_django_page(request: HttpRequest, response: HttpResponse) -> bool:
        if getattr(request, "dc_technical_page", False):
            return True
        if response.status_code < 400 or response.streaming:
            return False
        if not response.get("Content-Type", "").startswith("text/html"):
            return False
        head = response.content[:2048]
        return any(marker in head for marker in DJANGO_PAGE_MARKERS)

    @staticmethod
    def _add_headers(response: HttpResponse) -> HttpResponse:
        if (
            response.get("Content-Type", "").startswith("text/html")
            and "Content-Security-Policy" not in response
        ):
            response["Content-Security-Policy"] = settings.DELTAWEB_CONTENT_SECURITY_POLICY
        response.setdefault("X-Content-Type-Options", "nosniff")
        return response


def _printable_text(text: str) -> str:
    """Text safe to echo in an XML document: control characters and lone surrogates replaced."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return "".join("\ufffd" if (ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 else c for c in text)


def _printable(query: QueryDict) -> QueryDict:
    """The query with control characters replaced, safe to echo in an XML document."""
    cleaned = QueryDict(mutable=True)
    for name, values in query.lists():
        cleaned.setlist(_printable_text(name), [_printable_text(v) for v in values])
    return cleaned
