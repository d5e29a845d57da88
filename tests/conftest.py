"""Shared fixtures: an isolated mock cloud per test, the demo user and account."""

from __future__ import annotations

import base64
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from images import services, sync, tasks
from images.api.render_cache import render_cache
from images.api.replay import replay_cache
from images.models import ProviderAccount

MOCK_CREDENTIALS = {"username": "mockuser", "password": "mockpassword"}


def basic(username: str = "mockuser", password: str = "mockpassword") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll until ``predicate()`` is truthy and return its value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    # given: every test its own mock cloud and empty per-process caches
    settings.DELTAWEB_MOCK_STORAGE = tmp_path / "mock"
    render_cache.clear()
    replay_cache.clear()
    cache.clear()
    services._drivers.clear()
    yield
    render_cache.clear()
    replay_cache.clear()
    services._drivers.clear()


@pytest.fixture
def api_user(db):
    return get_user_model().objects.create_user("mockuser", password="mockpassword")


def make_account(
    name: str = "mock",
    *,
    users=(),
    driver: str = "mock",
    provider: str = "",
    params: dict | None = None,
    is_default: bool = False,
    credentials: dict | None = None,
) -> ProviderAccount:
    account = ProviderAccount(
        name=name, driver=driver, provider=provider, params=params or {}, is_default=is_default
    )
    account.credentials = MOCK_CREDENTIALS if credentials is None else credentials
    account.full_clean()
    account.save()
    account.users.add(*users)
    return account


@pytest.fixture
def mock_account(api_user):
    return make_account(users=[api_user], is_default=True)


@pytest.fixture
def synced_account(mock_account):
    sync.catalog_sync(account=mock_account)
    mock_account.refresh_from_db()
    return mock_account


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def auth_client(client, api_user):
    client.credentials(HTTP_AUTHORIZATION=basic())
    return client


@pytest.fixture(scope="session", autouse=True)
def _test_run_files():
    """Remove this run's broker spool when the session ends."""
    yield
    from django.conf import settings

    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    if folder and settings.CELERY_BROKER_URL.startswith("filesystem://"):
        import shutil
        from pathlib import Path

        shutil.rmtree(Path(folder).parent, ignore_errors=True)


@pytest.fixture
def sent(monkeypatch):
    """Tasks handed to the broker, as (name, args): recorded, not sent."""
    calls: list[tuple[str, tuple]] = []
    for name, task in vars(tasks).items():
        if hasattr(task, "apply_async") and getattr(task, "__module__", "") == tasks.__name__:
            monkeypatch.setattr(
                task, "apply_async", lambda args, countdown=0, _n=name: calls.append((_n, tuple(args)))
            )
    return calls
