"""Top-level routes: the Deltacloud API under /api, the operators' console under /admin."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.urls import include, path

from images.api.schema import openapi_json


def root(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """``GET /``: 301 to the entry point, with an absolute Location as Sinatra sent."""
    return HttpResponsePermanentRedirect(request.build_absolute_uri("/api"))


urlpatterns = [
    path("", root, name="root"),
    path("admin/", admin.site.urls),
    path("openapi.json", openapi_json, name="openapi"),
    path("", include("images.api.urls")),
]

handler404 = "images.api.exceptions.api_not_found"
handler500 = "images.api.exceptions.api_server_error"
