"""Versions, importable without Django (gunicorn's config reads them)."""

API_VERSION = "1.1.3"  # the Deltacloud API version deltaweb speaks
VERSION = "0.1.0"
# Exactly the real server's: clients compare it with the API version.
SERVER_HEADER = f"Apache-Deltacloud/{API_VERSION}"
# deltaweb's own version, in a header of its own.
VERSION_HEADER = ("X-Deltaweb-Version", VERSION)
