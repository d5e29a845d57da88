"""The test suite: same services as configured, cheap password hashing.

Integration tests start real worker processes: they share a file database
(not SQLite's in-memory default) and a broker folder of their own.
"""

import os
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
# One test run's files; worker processes of the run get the same id, and a
# second run in the same checkout gets its own.
TEST_RUN = env("DELTAWEB_TEST_RUN", default=str(os.getpid()))
os.environ["DELTAWEB_TEST_RUN"] = TEST_RUN
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{TEST_RUN}.sqlite3")}
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(
    CELERY_BROKER_URL, DATA_DIR / f"test-broker-{TEST_RUN}"
)
# Pages render without a collectstatic first; tests/test_static.py builds the
# manifest storage the other settings use, and the browser tests run on it.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# WhiteNoise serves the apps' static files straight from their folders.
STATIC_ROOT = DATA_DIR / "test-static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
# Health heartbeats of this run's worker and beat processes.
DELTAWEB_HEALTH_DIR = Path(env("DELTAWEB_HEALTH_DIR", default=str(DATA_DIR / f"test-health-{TEST_RUN}")))
