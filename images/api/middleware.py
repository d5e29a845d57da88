"""Deltacloud's Rack layer: matrix parameters, method override, common headers."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _split_matrix(segment: str) -> tuple[str, dict[str, str]]:
    name, *pairs = segment.split(";")
    params = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key:
            params[key] = value
    return name, params


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith(("/api/", "/api;"))


class DeltacloudMiddleware:
    """Prepares API requests the way Deltacloud's Rack middleware did.

    * ``/api;driver=ec2;provider=us-east-1/images``: matrix parameters on the
      API root select the account (``request.dc_selection``), like the
      ``X-Deltacloud-Driver``/``X-Deltacloud-Provider`` headers.
    * ``/api/images;instance_id=X``: matrix parameters on a collection are
      request parameters (``request.dc_matrix``); the advertised action links
      use this form. Member ids are left alone: an id may contain ``;``.
    * ``_method=delete`` in a form POST is a DELETE (the HTML forms use it).
    * Every API response carries ``Server`` (exactly the real server's),
      ``X-Deltaweb-Version`` and ``X-Deltacloud-*`` headers.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path_info):
            return self.get_response(request)
        self._prepare(request)
        if request.method not in SAFE_METHODS and not self._same_origin(request):
            # Browsers keep Basic credentials: a page elsewhere must not be able
            # to make them POST or DELETE here. API clients send no Origin.
            response = HttpResponse("Cross-origin request refused", status=403, content_type="text/plain")
        else:
            response = self.get_response(request)
        return self._finish(request, response)

    @staticmethod
    def _same_origin(request: HttpRequest) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        try:
            return urlsplit(origin).netloc == request.get_host()
        except ValueError:  # `http://[::1` and other unparsable origins: refused, not a 500
            return False

    def _prepare(self, request: HttpRequest) -> None:
        segments = request.path_info.split("/")
        root, api_matrix = _split_matrix(segments[1])
        segments[1] = root
        matrix: dict[str, str] = {}
        # /api/<collection>;k=v and /api/instances/<id>/<action>;k=v (the
        # advertised `run;id=...` link); never the member id segment itself.
        if len(segments) in (3, 5) and ";" in segments[-1]:
            segments[-1], matrix = _split_matrix(segments[-1])
        request.path_info = "/".join(segments)
        request.dc_matrix = matrix

        driver = api_matrix.get("driver") or request.headers.get("X-Deltacloud-Driver")
        provider = api_matrix.get("provider") or request.headers.get("X-Deltacloud-Provider")
        request.dc_selection = (
            driver.strip().lower() if driver else None,
            provider.strip().lower() if provider else None,
        )
        # The realm of WWW-Authenticate names the driver, as Deltacloud's did.
        request.dc_driver_hint = request.dc_selection[0]

        content_type = request.content_type or ""
        if request.method == "POST" and content_type in FORM_TYPES:
            override = request.POST.get("_method", "").upper()
            if override in ("DELETE", "PUT"):
                request.method = override

    def _finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not request.META.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
            # gunicorn writes the Server header itself (deltaweb/gunicorn_conf.py).
            response["Server"] = settings.DELTAWEB_SERVER_HEADER
        name, value = settings.DELTAWEB_VERSION_HEADER
        response[name] = value
        context = getattr(request, "dc_context", None)
        driver = context.driver if context else (request.dc_selection[0] or settings.DELTAWEB_DEFAULT_DRIVER)
        provider = context.provider if context else request.dc_selection[1]
        response["X-Deltacloud-Driver"] = driver
        if provider:
            response["X-Deltacloud-Provider"] = provider
        response["X-Content-Type-Options"] = "nosniff"
        if request.method == "HEAD" and not response.streaming:
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response
