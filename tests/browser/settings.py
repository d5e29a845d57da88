"""The test settings with static files as deployed: collected into STATIC_ROOT
with the compressed manifest storage, served by WhiteNoise (no finders)."""

from pathlib import Path

from deltaweb.settings.base import STORAGES as DEPLOYED_STORAGES
from deltaweb.settings.base import env
from deltaweb.settings.test import *

STORAGES = DEPLOYED_STORAGES
STATIC_ROOT = Path(env("STATIC_ROOT"))
WHITENOISE_USE_FINDERS = False
