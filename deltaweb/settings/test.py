"""The test suite: same services as configured, cheap password hashing."""

from deltaweb.settings.base import *
from deltaweb.settings.base import DATA_DIR, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
DELTAWEB_DEMO_SEED_ALLOWED = True
DELTAWEB_HOSTNAME = "testhost"
DELTAWEB_MOCK_STORAGE = DATA_DIR / "test-mock"
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://deltaweb-test")}
