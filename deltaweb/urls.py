"""Top-level routes: the Deltacloud API under /api, the operators' console under /admin."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from images.api.schema import openapi_json

urlpatterns = [
    path("", RedirectView.as_view(url="/api", permanent=False)),
    path("admin/", admin.site.urls),
    path("openapi.json", openapi_json, name="openapi"),
    path("", include("images.api.urls")),
]

handler404 = "images.api.exceptions.api_not_found"
handler500 = "images.api.exceptions.api_server_error"
