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

# Nothing of ours is meant to be framed (CSP frame-ancestors 'none' too).
X_FRAME_OPTIONS = "DENY"

# --- TLS (served behind a TLS-terminating proxy that sets X-Forwarded-Proto) ---
# HSTS is sent on HTTPS responses only (SecurityMiddleware).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# No redirect to HTTPS by default: API clients send Basic credentials with their
# first request, so a redirect comes too late to protect them; terminate TLS in
# front (or set SECURE_SSL_REDIRECT=true), and check --deploy knows why.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
if not SECURE_SSL_REDIRECT:
    SILENCED_SYSTEM_CHECKS = ["security.W008"]
