"""Sync leases with a real worker process: a killed sync frees its account
within one lease, and a long sync that keeps renewing is never taken over."""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from images import services, sync, tasks
from images.models import ProviderAccount, SyncRun
from tests.conftest import make_account, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
JSON = {"HTTP_ACCEPT": "application/json"}


def slow_cloud(api_user, images: int, **params) -> ProviderAccount:
    """A never-synced mock cloud listing one image per page, each page slow."""
    account = make_account("slow", users=[api_user], is_default=True, params={"page_size": 1, **params})
    driver = services.build_driver(account=account)
    with driver.store.locked():
        for i in range(images - 3):  # the mock starts with img1-3
            driver.store.put("images", {"id": f"extra{i}", "name": f"extra{i}", "owner_id": "mockuser"})
    return account


def lease_holder(account: ProviderAccount) -> tuple[str, int] | None:
    owner = ProviderAccount.objects.get(pk=account.pk).sync_lock_owner
    if not owner:
        return None
    host, pid = owner.rsplit(":", 1)
    return host, int(pid)


def test_a_killed_sync_frees_its_account_within_one_lease(stack, auth_client, api_user):
    # given: a slow cloud nobody has synced, and a worker whose syncs hold 6 s leases
    lease = 6
    stack.env["DELTAWEB_SYNC_LEASE_SECONDS"] = str(lease)
    account = slow_cloud(api_user, images=10, list_delay=1.0)
    # Two children: the pool takes a while to give up on the killed one's job.
    worker = stack.worker(concurrency=2)

    # when: a request finds the catalog empty (503, and a sync is queued) and
    # the worker child running that sync is killed -9 half way
    assert auth_client.get("/api/images", **JSON).status_code == 503
    host, pid = wait_until(lambda: lease_holder(account), 30, "the sync to take its lease")
    assert host == socket.gethostname() and pid != worker.proc.pid  # a child, not the main process
    time.sleep(2.5)
    os.kill(pid, signal.SIGKILL)
    killed = timezone.now()
    account.params = {"page_size": 1}  # the next listing is quick
    account.save(update_fields=["params"])

    # then: while the dead sync's lease lasts the catalog is still not there, and
    # no second sync starts; right after it, the request path queues one that
    # takes the lease over and fills the cache
    response = auth_client.get("/api/images", **JSON)
    assert response.status_code == 503 and response["Retry-After"]
    wait_until(lambda: auth_client.get("/api/images", **JSON).status_code == 200, lease + 30, "the catalog")
    recovered = timezone.now()
    dead, second = SyncRun.objects.filter(account=account).order_by("started_at")
    assert dead.outcome == SyncRun.Outcome.FAILED and dead.error.startswith("Abandoned")
    assert second.outcome == SyncRun.Outcome.SUCCEEDED and second.images_listed == 10
    # the lease was last renewed up to a page (1 s) before the kill
    assert killed + timedelta(seconds=lease - 2) < second.started_at < killed + timedelta(seconds=lease + 4)
    assert recovered - killed < timedelta(seconds=lease + 15)
    assert lease_holder(account) is None


def test_a_long_sync_renews_its_lease_and_is_not_taken_over(stack, api_user):
    # given: a sync taking about 12 s, with 3 s leases
    lease = 3
    stack.env["DELTAWEB_SYNC_LEASE_SECONDS"] = str(lease)
    account = slow_cloud(api_user, images=12, list_delay=1.0)
    stack.worker(concurrency=1)
    tasks.catalog_sync_task.delay(account.pk)
    holder = wait_until(lambda: lease_holder(account), 30, "the sync to take its lease")
    wait_until(lambda: SyncRun.objects.filter(account=account).exists(), 10, "the run to be recorded")

    # when: other syncs try all along, for more than three leases
    refused = 0
    while SyncRun.objects.filter(account=account, outcome=SyncRun.Outcome.RUNNING).exists():
        with pytest.raises(sync.SyncInProgress):
            sync.catalog_sync(account=ProviderAccount.objects.get(pk=account.pk))
        assert lease_holder(account) in (holder, None)
        refused += 1
        time.sleep(0.5)

    # then: every one was refused, and the first sync finished on its own lease
    (run,) = SyncRun.objects.filter(account=account)
    assert run.outcome == SyncRun.Outcome.SUCCEEDED and run.images_listed == 12
    assert run.duration > 3 * lease and refused >= 3 * lease
    assert lease_holder(account) is None
