"""Routes under /api. No trailing slashes on collections: ``/api/images/`` is a
404 as in Deltacloud; the entry point answers as ``/api`` and ``/api/`` (Sinatra
served both). Whatever else starts with /api is an error document in the
negotiated format, whatever DEBUG says (the catch-all at the end)."""

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from images.api import views
from images.api.exceptions import api_not_found

router = SimpleRouter(trailing_slash=False)
router.register("images", views.ImageViewSet, basename="image")
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("hardware_profiles", views.HardwareProfileViewSet, basename="hardware_profile")
router.register("realms", views.RealmViewSet, basename="realm")
router.register("drivers", views.DriverViewSet, basename="driver")

entry = views.ApiEntryViewSet.as_view({"get": "list", "post": "create"})
urlpatterns = [
    path("api", entry, name="api"),
    path("api/", entry, name="api-slash"),
    path("api/instance_states", views.InstanceStateViewSet.as_view({"get": "list"}), name="instance_states"),
    path("api/", include(router.urls)),
    re_path(r"^api(?:/.*)?$", api_not_found, name="api-unrouted"),
]
