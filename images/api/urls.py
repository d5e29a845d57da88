"""Routes under /api. No trailing slashes: ``/api/images/`` is a 404 as in Deltacloud."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from images.api import views

router = SimpleRouter(trailing_slash=False)
router.register("images", views.ImageViewSet, basename="image")
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("hardware_profiles", views.HardwareProfileViewSet, basename="hardware_profile")
router.register("realms", views.RealmViewSet, basename="realm")
router.register("drivers", views.DriverViewSet, basename="driver")

urlpatterns = [
    path("api", views.ApiEntryViewSet.as_view({"get": "list", "post": "create"}), name="api"),
    path("api/instance_states", views.InstanceStateViewSet.as_view({"get": "list"}), name="instance_states"),
    path("api/", include(router.urls)),
]
