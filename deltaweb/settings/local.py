"""The embedded default: SQLite, the filesystem broker, demo seeding allowed."""

from deltaweb.settings.base import *
from deltaweb.settings.base import env

DEBUG = env.bool("DEBUG", default=True)
DELTAWEB_DEMO_SEED_ALLOWED = True
