"""deltaweb: a Deltacloud-compatible images API on Django."""

from deltaweb.celery import app as celery_app

__all__ = ("celery_app",)
