"""A throttling provider's Retry-After is honoured: the worker's next attempt
and the next sync are never sooner than the cloud asked (OpenStack on the
fake cloud, whose 413/429 answers carry Retry-After)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from images import operations, sync, tasks
from images.models import Image, Operation, ProviderAccount
from providers.exceptions import Throttled
from tests.conftest import make_account
from tests.fakes.openstack import FakeOpenStack

pytestmark = pytest.mark.django_db


@pytest.fixture
def cloud():
    with FakeOpenStack() as fake:
        yield fake


@pytest.fixture
def account(cloud, api_user):
    account = make_account(
        "os",
        users=[api_user],
        driver="openstack",
        provider="RegionOne",
        is_default=True,
        params={"auth_url": cloud.auth_url, "project_name": "demo"},
        credentials={"username": "demo", "password": cloud.password},
    )
    sync.catalog_sync(account=account)
    return account


def test_a_throttled_delete_waits_as_long_as_the_cloud_asked(
    cloud, account, api_user, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[float] = []
    monkeypatch.setattr(
        tasks.image_delete_task, "apply_async", lambda args, countdown=0: sent.append(countdown)
    )
    golden = Image.objects.get(account=account, name="demo-golden")
    op = operations.image_delete(account=account, user=api_user, external_id=golden.external_id)
    cloud.inject(r"/v2/images/", method="DELETE", status=429, retry_after=45)

    # when: the worker's attempt meets the cloud's 429
    with django_capture_on_commit_callbacks(execute=True):
        tasks.image_delete_task(op.pk)

    # then: the next attempt is queued no sooner than Retry-After
    op.refresh_from_db()
    assert op.status == Operation.Status.QUEUED and "slow down" in op.last_error
    assert sent[-1] >= 45 and op.next_poll_at >= timezone.now() + timedelta(seconds=44)


def test_a_throttled_sync_is_retried_no_sooner_than_asked(cloud, account):
    cloud.inject(r"/v2/images$", status=413, retry_after=900)
    with pytest.raises(Throttled):
        sync.catalog_sync(account=account, full=True)
    account = ProviderAccount.objects.get(pk=account.pk)
    assert account.next_sync_at >= timezone.now() + timedelta(seconds=899)
