"""Versions, importable without Django (gunicorn's config reads them)."""

API_VERSION = "1.1.3"  # the Deltacloud API version deltaweb speaks
VERSION = "0.1.0"
SERVER_HEADER = f"Apache-Deltacloud/{API_VERSION} deltaweb/{VERSION}"
