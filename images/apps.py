from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.core.signals import setting_changed


def configure_drivers(**kwargs) -> None:
    """Deployment options of the drivers come from settings (the mock's storage)."""
    from django.conf import settings

    from providers import registry

    setting = kwargs.get("setting")
    if setting is None or setting == "DELTAWEB_MOCK_STORAGE":
        registry.configure("mock", storage=str(settings.DELTAWEB_MOCK_STORAGE))


class ImagesConfig(AppConfig):
    """The catalog cache, its API and its background work."""

    name = "images"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the tasks with Celery in every process (web included), so
        # ``images.queue.enqueue`` finds them by name without importing them.
        from images import tasks  # noqa: F401

        configure_drivers()
        # Tests override the storage per test; drivers must follow.
        setting_changed.connect(configure_drivers, dispatch_uid="deltaweb-configure-drivers")


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the console's site (the fleet overview) as the default site."""

    default = False  # not the images app's config: INSTALLED_APPS names it explicitly

    default_site = "images.admin_site.ConsoleSite"
