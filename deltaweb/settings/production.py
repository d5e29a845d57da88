"""Production only hardens what base.py reads from the environment."""

from django.core.exceptions import ImproperlyConfigured

from deltaweb.settings.base import *
from deltaweb.settings.base import DEV_SECRET_KEY, SECRET_KEY, env

if not SECRET_KEY or SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured(
        "Set SECRET_KEY to a long random value: production refuses the development key"
    )

DEBUG = env.bool("DEBUG", default=False)
DELTAWEB_DEMO_SEED_ALLOWED = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
