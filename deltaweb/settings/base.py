"""Everything, read from the environment (django-environ); the other modules only adjust."""

from __future__ import annotations

import socket
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from deltaweb import version

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env("DELTAWEB_DATA_DIR", default=str(BASE_DIR / "data")))

# Only good for development: production.py refuses to start with it.
DEV_SECRET_KEY = "django-insecure-deltaweb-development-only-key-do-not-deploy"
SECRET_KEY = env("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    # django.contrib.admin, with the operators' console as its default site
    "images.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "images",
]

MIDDLEWARE = [
    # A repeated image read whose account row is unchanged gets its recorded
    # answer after the one query every read makes (images/api/replay.py).
    "images.api.replay.ReplayMiddleware",
    # First: refuses oversized bodies, bad hosts and malformed API input before
    # any other work (images/api/guard.py); adds the CSP to HTML pages.
    "images.api.guard.EdgeGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS/JS) from STATIC_ROOT, under gunicorn too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "images.api.middleware.DeltacloudMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "deltaweb.urls"
WSGI_APPLICATION = "deltaweb.wsgi.application"
# /api/images/ (trailing slash) is a 404 in Deltacloud, never a redirect.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# An empty DATABASE_URL (a compose file passing an unset variable) means the default.
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{DATA_DIR / 'deltaweb.sqlite3'}"
    )
}
if not DATABASES["default"].get("ENGINE"):
    raise ImproperlyConfigured("DATABASE_URL: the scheme is not recognized (postgres://... or sqlite:///...)")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share the file: WAL lets readers run beside the
    # writer, IMMEDIATE transactions avoid "database is locked" upgrades.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    # A new connection per request makes reads several times slower.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # The same backend, whose health check needs no round trip (deltaweb/db/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "deltaweb.db.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://deltaweb")}

# Django's defaults, PBKDF2 first, computed off gevent's event loop (images/api/throttle.py).
PASSWORD_HASHERS = [
    "images.api.throttle.PBKDF2OffLoopHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` fills it (`make run`, the Dockerfile); WhiteNoise
# serves it with far-future caching of the hashed, compressed copies.
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Files browsers ask for at the site's root (favicon.ico).
WHITENOISE_ROOT = BASE_DIR / "deltaweb" / "root_files"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["images.api.auth.CachedBasicAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "images.api.negotiation.DeltacloudNegotiation",
    "DEFAULT_RENDERER_CLASSES": [
        "images.api.renderers.XMLRenderer",
        "images.api.renderers.JSONRenderer",
        "images.api.renderers.HTMLRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.JSONParser",
    ],
    "EXCEPTION_HANDLER": "images.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # One scrubbing rule for every log line (images/scrub.py).
    "filters": {"scrub": {"()": "images.scrub.ScrubFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Celery -----------------------------------------------------------------
# The default broker needs no server, so `make run` starts a real worker
# process on a bare machine; production points this at redis://.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")


def broker_transport_options(broker_url: str, folder: Path) -> dict:
    if broker_url.startswith("filesystem://"):
        # Created here, not only by runstack: any process may send a task first
        # (a sync run by hand, a benchmark), and kombu does not create them.
        for sub in ("queue", "control"):
            try:
                (folder / sub).mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # a read-only data directory: sending reports it, as it did
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
        }
    # Countdowns stay far below this, so Redis never redelivers a task that
    # is merely waiting for its ETA.
    return {"visibility_timeout": 3600}


CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL, DATA_DIR / "broker")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Catalog listings (minutes on a big account) and operation polls (a second)
# go to separate queues, consumed by separate worker processes.
CELERY_TASK_DEFAULT_QUEUE = "operations"
# Bulk catalog work, search entries included, goes to the sync queue (images/queue.py).
CELERY_TASK_ROUTES = {
    "images.tasks.catalog_sync_task": {"queue": "sync"},
    "images.tasks.search_catch_up_task": {"queue": "sync"},
    "images.tasks.search_catch_up_lagging_task": {"queue": "sync"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sync-due-accounts": {
        "task": "images.tasks.sync_due_accounts_task",
        "schedule": env.float("DELTAWEB_SYNC_TICK", default=10.0),
    },
    "search-catch-up": {
        "task": "images.tasks.search_catch_up_lagging_task",
        "schedule": env.float("DELTAWEB_SEARCH_TICK", default=30.0),
    },
}

# --- deltaweb ---------------------------------------------------------------
DELTAWEB_API_VERSION = version.API_VERSION
DELTAWEB_VERSION = version.VERSION
DELTAWEB_SERVER_HEADER = version.SERVER_HEADER
DELTAWEB_VERSION_HEADER = version.VERSION_HEADER
DELTAWEB_DEFAULT_DRIVER = env("API_DRIVER", default="mock")
# Shown in `WWW-Authenticate: Basic realm="<driver>-deltacloud@<host>"`.
DELTAWEB_HOSTNAME = env("DELTAWEB_HOSTNAME", default=socket.gethostname())
# How long a verified Basic credential is trusted without re-hashing.
DELTAWEB_AUTH_CACHE_SECONDS = env.int("DELTAWEB_AUTH_CACHE_SECONDS", default=300)
# Rendered catalog documents kept per process (bytes), and the biggest one kept.
DELTAWEB_RENDER_CACHE_BYTES = env.int("DELTAWEB_RENDER_CACHE_BYTES", default=64 * 1024 * 1024)
DELTAWEB_RENDER_CACHE_MAX_ITEM = env.int("DELTAWEB_RENDER_CACHE_MAX_ITEM", default=16 * 1024 * 1024)
# Recorded answers to repeated image reads (images/api/replay.py), per process.
DELTAWEB_REPLAY_CACHE_BYTES = env.int("DELTAWEB_REPLAY_CACHE_BYTES", default=32 * 1024 * 1024)
DELTAWEB_REPLAY_MAX_ITEM = env.int("DELTAWEB_REPLAY_MAX_ITEM", default=2 * 1024 * 1024)

# API collections (issue 9): the largest ?limit= page, and the size from which a
# whole unpaginated list is streamed from a server-side cursor instead of kept.
DELTAWEB_PAGE_MAX = env.int("DELTAWEB_PAGE_MAX", default=1000)
DELTAWEB_STREAM_ROWS = env.int("DELTAWEB_STREAM_ROWS", default=5000)
# A show of an id the cache does not know asks the provider, then remembers
# the miss this long so a client cannot hammer the provider with unknown ids.
DELTAWEB_NEGATIVE_LOOKUP_SECONDS = env.int("DELTAWEB_NEGATIVE_LOOKUP_SECONDS", default=30)
DELTAWEB_MOCK_STORAGE = Path(env("DELTAWEB_MOCK_STORAGE", default=str(DATA_DIR / "mock")))
# Key that encrypts provider credentials at rest; derived from SECRET_KEY
# unless given, so rotating SECRET_KEY needs this set to the old derivation.
DELTAWEB_CREDENTIALS_KEY = env("DELTAWEB_CREDENTIALS_KEY", default="")
# `make run` may create the demo account and user only where this is True.
DELTAWEB_DEMO_SEED_ALLOWED = False
X_FRAME_OPTIONS = "SAMEORIGIN"
# Image operations: how long a create/delete may take, how the worker polls.
DELTAWEB_CREATE_DEADLINE_SECONDS = env.int("DELTAWEB_CREATE_DEADLINE_SECONDS", default=3 * 3600)
DELTAWEB_DELETE_DEADLINE_SECONDS = env.int("DELTAWEB_DELETE_DEADLINE_SECONDS", default=3600)
DELTAWEB_POLL_BASE_SECONDS = env.float("DELTAWEB_POLL_BASE_SECONDS", default=1.0)
DELTAWEB_POLL_MAX_SECONDS = env.float("DELTAWEB_POLL_MAX_SECONDS", default=30.0)
# A worker owns an operation for this long per attempt; a killed worker's
# claim expires and the reaper hands the operation to another.
DELTAWEB_CLAIM_SECONDS = env.int("DELTAWEB_CLAIM_SECONDS", default=30)
DELTAWEB_REAPER_GRACE_SECONDS = env.int("DELTAWEB_REAPER_GRACE_SECONDS", default=15)
DELTAWEB_REAPER_TICK = env.float("DELTAWEB_REAPER_TICK", default=10.0)
# After a create or delete the account is synced every FAST_SYNC_INTERVAL
# seconds for FAST_SYNC_WINDOW seconds.
DELTAWEB_FAST_SYNC_WINDOW = env.int("DELTAWEB_FAST_SYNC_WINDOW", default=600)
DELTAWEB_FAST_SYNC_INTERVAL = env.int("DELTAWEB_FAST_SYNC_INTERVAL", default=30)
DELTAWEB_IMAGE_DESCRIPTION_MAX_LENGTH = 1024
# Images the provider stopped listing stay (hidden, DELETED in the delta feed)
# this long, then are forgotten.
DELTAWEB_VANISHED_RETENTION_SECONDS = env.int("DELTAWEB_VANISHED_RETENTION_SECONDS", default=7 * 24 * 3600)
# A sync holds its account's lease this long past its last renewal (it renews
# between pages): a killed sync blocks its account at most this long.
DELTAWEB_SYNC_LEASE_SECONDS = env.float("DELTAWEB_SYNC_LEASE_SECONDS", default=60.0)
# --- Keeping the workers alive (README) ---------------------------------------
# The prefork pool that survives kill -9 of a child, and beat's scheduler that
# runs the operations reaper in beat's own process every DELTAWEB_REAPER_TICK.
CELERY_WORKER_POOL = "deltaweb.celery:KillSafeTaskPool"
CELERY_BEAT_SCHEDULER = "deltaweb.celery:ReapingScheduler"
# Each worker also consumes its own queue, which health pings go to.
CELERY_WORKER_DIRECT = True
# Beat and the workers write to the real stderr: with Celery's redirection the
# handler Django's LOGGING makes writes into a proxy that drops what beat's
# reaper logs.
CELERY_WORKER_REDIRECT_STDOUTS = False
DELTAWEB_HEALTH_DIR = Path(env("DELTAWEB_HEALTH_DIR", default=str(DATA_DIR / "health")))
# A worker whose every child runs a task started less than this long ago is
# busy, not stuck (a long catalog listing).
DELTAWEB_WORKER_TASK_MAX_SECONDS = env.int("DELTAWEB_WORKER_TASK_MAX_SECONDS", default=3600)

# -- The OpenAPI document (drf-spectacular; images/api/schema.py), served at /openapi.json --
INSTALLED_APPS += ["drf_spectacular"]
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "images.api.schema.DeltacloudAutoSchema"
SPECTACULAR_SETTINGS = {
    "TITLE": "deltaweb: the Deltacloud Images API",
    "DESCRIPTION": (
        "Apache Deltacloud 1.1.3's API, wire-compatible, served by deltaweb. XML is the default; "
        "`?format=xml|json|html` wins over `Accept`, and `Accept: */*` alone gives HTML. "
        "JSON is Deltacloud 1.1's dictionary dialect; XML documents are the real server's, byte for "
        "byte. Errors are Deltacloud error documents in the negotiated format. The account is chosen "
        "with the `X-Deltacloud-Driver`/`X-Deltacloud-Provider` headers or matrix parameters on the "
        "root (`/api;driver=ec2;provider=us-east-1/images`), else the user's default account serves."
    ),
    "VERSION": DELTAWEB_API_VERSION,
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["images.api.schema.drop_aliases"],
    "POSTPROCESSING_HOOKS": ["images.api.schema.check_routes"],
    "TAGS": [
        {"name": "api", "description": "The entry point"},
        {"name": "images", "description": "The cached image catalog of the request's account"},
        {"name": "instances", "description": "The account's instances and their actions"},
        {"name": "driver", "description": "What the driver and the provider offer"},
    ],
    "EXTERNAL_DOCS": {
        "description": "Apache Deltacloud, whose API this is",
        "url": "https://deltacloud.apache.org/",
    },
}

# --- The edge: input limits, login throttling, headers (images/api/guard.py, throttle.py) ---
# Bodies over this are refused with 413 from Content-Length, before a byte is read.
DELTAWEB_MAX_BODY_BYTES = env.int("DELTAWEB_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = DELTAWEB_MAX_BODY_BYTES
# Ids, path segments, matrix parameters and X-Deltacloud-* headers, in UTF-8 bytes.
DELTAWEB_MAX_ID_BYTES = 255
DELTAWEB_MAX_PARAM_BYTES = 8192
DELTAWEB_MAX_JSON_DEPTH = 32
# Logins that need a password hash (API Basic credentials not verified recently, the
# admin login) per client address and per user name per window; beyond: 429.
DELTAWEB_LOGIN_WINDOW_SECONDS = env.int("DELTAWEB_LOGIN_WINDOW_SECONDS", default=60)
DELTAWEB_LOGIN_ATTEMPTS_PER_ADDRESS = env.int("DELTAWEB_LOGIN_ATTEMPTS_PER_ADDRESS", default=10)
DELTAWEB_LOGIN_ATTEMPTS_PER_USER = env.int("DELTAWEB_LOGIN_ATTEMPTS_PER_USER", default=5)
# A wrong credential is answered without hashing for this long (until the password changes).
DELTAWEB_FAILED_LOGIN_MEMORY_SECONDS = env.int("DELTAWEB_FAILED_LOGIN_MEMORY_SECONDS", default=900)
# HTML pages (the API's browser pages, the console): no script but our own files,
# no inline script, no framing elsewhere. Inline styles stay (base.html has one).
DELTAWEB_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
