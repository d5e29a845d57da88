from django.apps import AppConfig


class ImagesConfig(AppConfig):
    """The catalog cache, its API and its background work."""

    name = "images"
    default_auto_field = "django.db.models.BigAutoField"
