"""The test suite: same services as configured, cheap password hashing.

Integration tests start real worker processes: they share a file database
(not SQLite's in-memory default) and a broker folder of their own.
"""

from pathlib import Path

from deltaweb.settings.base import *
from deltaweb.settings.base import (
    CELERY_BROKER_URL,
    DATA_DIR,
    DATABASES,
    broker_transport_options,
    env,
)

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
DELTAWEB_DEMO_SEED_ALLOWED = True
DELTAWEB_HOSTNAME = "testhost"
DELTAWEB_MOCK_STORAGE = Path(env("DELTAWEB_MOCK_STORAGE", default=str(DATA_DIR / "test-mock")))
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://deltaweb-test")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL, DATA_DIR / "test-broker")
