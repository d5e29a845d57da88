"""WSGI entry point (gunicorn deltaweb.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deltaweb.settings.local")

django_application = get_wsgi_application()

# Imported once the apps are loaded: a repeated image read is answered before Django runs.
from images.api.replay import ReplayFront  # noqa: E402

application = ReplayFront(django_application)
