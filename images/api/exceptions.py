"""The one place where errors become HTTP: Deltacloud error documents.

Every exception a view can raise (DRF's, the services', the drivers' typed
errors) is mapped here by class to a status, a message and the Ruby class
name clients read from the JSON ``error`` key. No stack trace is ever sent.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, RawPostDataException
from django.http.multipartparser import MultiPartParserError
from rest_framework import exceptions as drf

from images.api.negotiation import choose_format
from images.api.renderers import CONTENT_TYPES
from images.api.representations.errors import ErrorDoc, error_document
from images.crypto import CredentialsUnreadable
from images.scrub import MASK, is_sensitive
from images.services import NoAccount, UnknownDriver, account_flag
from providers import exceptions as pe

logger = logging.getLogger(__name__)

GENERIC = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Resource Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Supported",
    502: "Backend Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
ERROR_CLASSES = {
    400: "Deltacloud::Exceptions::ValidationFailure",
    401: "Deltacloud::Exceptions::AuthenticationFailure",
    403: "Deltacloud::Exceptions::Forbidden",
    404: "Deltacloud::Exceptions::ObjectNotFound",
    405: "Deltacloud::Exceptions::MethodNotAllowed",
    409: "Deltacloud::Exceptions::Conflict",
    500: "Deltacloud::Exceptions::BackendError",
    501: "Deltacloud::Exceptions::NotSupported",
    502: "Deltacloud::Exceptions::ProviderError",
    503: "Deltacloud::Exceptions::ServiceUnavailable",
    504: "Deltacloud::Exceptions::ProviderTimeout",
}
# Most specific first: the first matching class decides the status.
PROVIDER_STATUS: tuple[tuple[type[pe.ProviderError], int], ...] = (
    (pe.NotFound, 404),
    (pe.NotSupported, 501),
    (pe.InvalidParameter, 400),
    (pe.Conflict, 409),
    (pe.ProviderTimeout, 504),
    (pe.AuthFailure, 502),
    (pe.BackendError, 500),
    (pe.DriverUnavailable, 500),
    (pe.ProviderError, 502),
)
MAX_PARAM_LENGTH = 1024


class ApiError(Exception):
    """An error a view raises directly with its status and message."""

    def __init__(self, status: int, message: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message or GENERIC.get(status, "Error"))
        self.status = status
        self.message = str(self.args[0])
        self.headers = headers or {}


def _status_and_message(exc: Exception, request) -> tuple[int, str] | None:
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, pe.ProviderError):
        status = next(code for cls, code in PROVIDER_STATUS if isinstance(exc, cls))
        message = exc.message
        if isinstance(exc, pe.AuthFailure):
            context = getattr(request, "dc_context", None)
            account = context.account if context else None
            name = account.name if account else "the account"
            message = f"The provider rejected the stored credentials of account '{name}': {message}"
            if account is not None:
                account_flag(account=account, reason=message)
        return status, message
    if isinstance(exc, UnknownDriver):
        return 400, str(exc)
    if isinstance(exc, CredentialsUnreadable):
        logger.error("%s", exc)
        return 500, str(exc)
    if isinstance(exc, NoAccount):
        return 403, str(exc)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return 401, GENERIC[401]
    if isinstance(exc, drf.ValidationError):
        return 400, _validation_message(exc.detail)
    if isinstance(exc, drf.ParseError):
        return 400, str(exc.detail)
    if isinstance(exc, drf.APIException):
        return exc.status_code, GENERIC.get(exc.status_code, str(exc.detail))
    if isinstance(exc, Http404):
        return 404, GENERIC[404]
    return None


def _validation_message(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_validation_message(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(_validation_message(v) for v in detail)
    return str(detail)


def request_params(request, route_kwargs: dict | None = None) -> list[tuple[str, str]]:
    """Request parameters echoed in ``<request>``, as plain strings."""
    django_request = getattr(request, "_request", request)
    items: list[tuple[str, str]] = list(django_request.GET.items())
    items += list(getattr(django_request, "dc_matrix", {}).items())
    if django_request.method == "POST" and django_request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        try:
            items += list(django_request.POST.items())
        except (RawPostDataException, MultiPartParserError):
            logger.debug("request body not echoed in the error document")
    items += [(k, str(v)) for k, v in (route_kwargs or {}).items()]
    cleaned = []
    for key, value in items:
        if is_sensitive(key):
            value = MASK
        cleaned.append((key, value[:MAX_PARAM_LENGTH]))
    return cleaned


def error_response(
    request, status: int, message: str, fmt: str | None, route_kwargs: dict | None = None
) -> HttpResponse:
    """A Deltacloud error document in ``fmt`` (None: 406 with an empty body)."""
    if fmt is None:
        response = HttpResponse(status=406)
        del response["Content-Type"]
        return response
    django_request = getattr(request, "_request", request)
    context = getattr(django_request, "dc_context", None)
    selection = getattr(django_request, "dc_selection", (None, None))
    driver = context.driver if context else (selection[0] or settings.DELTAWEB_DEFAULT_DRIVER)
    provider = (context.provider if context else selection[1]) or "default"
    error_class = ERROR_CLASSES.get(status, "Deltacloud::Exceptions::DeltacloudException")
    params = request_params(request, route_kwargs)
    error = ErrorDoc(status, django_request.path, driver, provider, message, error_class, params)
    body = error_document(fmt, error)
    return HttpResponse(body, status=status, content_type=CONTENT_TYPES[fmt])


def _format_of(request) -> str | None:
    renderer = getattr(request, "accepted_renderer", None)
    if renderer is not None:
        return renderer.format
    django_request = getattr(request, "_request", request)
    accept = django_request.META.get("HTTP_ACCEPT", "")
    return choose_format(django_request.GET.get("format"), accept) or "xml"


def exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    request = context["request"]
    if isinstance(exc, drf.NotAcceptable):
        return error_response(request, 406, "", None)
    mapped = _status_and_message(exc, request)
    if mapped is None:
        return None  # a bug: Django's handler500 answers without details
    status, message = mapped
    if status >= 500:
        logger.warning("%s %s -> %s: %s", request.method, request.path, status, message)
    response = error_response(request, status, message, _format_of(request), context.get("kwargs"))
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        authenticator = getattr(request, "_authenticator", None) or (
            request.authenticators[0] if request.authenticators else None
        )
        if authenticator is not None:
            response["WWW-Authenticate"] = authenticator.authenticate_header(request)
    if isinstance(exc, drf.MethodNotAllowed):
        view = context.get("view")
        if view is not None:
            response["Allow"] = ", ".join(view.allowed_methods)
    if isinstance(exc, ApiError):
        for name, value in exc.headers.items():
            response[name] = value
    if isinstance(exc, pe.Unavailable) and not isinstance(exc, pe.ProviderTimeout):
        response["Retry-After"] = "5"
    if isinstance(exc, drf.Throttled) and exc.wait:
        response["Retry-After"] = str(int(exc.wait))
    return response


def api_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """Unknown route: an error document under /api, Django's page elsewhere."""
    from django.views.defaults import page_not_found

    from images.api.middleware import is_api_path

    if not is_api_path(request.path_info):
        return page_not_found(request, exception)
    return error_response(request, 404, GENERIC[404], _format_of(request))


def api_server_error(request: HttpRequest) -> HttpResponse:
    from django.views.defaults import server_error

    from images.api.middleware import is_api_path

    if not is_api_path(request.path_info):
        return server_error(request)
    return error_response(request, 500, GENERIC[500], _format_of(request))
