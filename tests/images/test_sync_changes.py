"""Sync's bookkeeping beyond the merge: incremental listings, runs, the change
versions the delta feed reads, and the purge of long-vanished rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from images import services, sync
from images.models import Image, Operation, ProviderAccount, SyncRun
from providers.exceptions import Unavailable
from tests.conftest import make_account

pytestmark = pytest.mark.django_db


class Counting:
    """Counts the listings a driver is asked for (full and incremental)."""

    def __init__(self, driver, monkeypatch) -> None:
        self.full = self.changes = 0
        full, changes = driver.iter_image_pages, driver.iter_image_changes

        def count_full():
            self.full += 1
            return full()

        def count_changes(since):
            self.changes += 1
            return changes(since)

        monkeypatch.setattr(driver, "iter_image_pages", count_full)
        monkeypatch.setattr(driver, "iter_image_changes", count_changes)


def add_image(driver, image_id: str, **fields) -> None:
    with driver.store.locked():
        driver.store.put(
            "images",
            {"id": image_id, "name": image_id, "owner_id": "mockuser", "architecture": "x86_64", **fields},
        )


@pytest.fixture
def incremental_account(api_user):
    account = make_account("glance-like", users=[api_user], params={"incremental": True})
    sync.catalog_sync(account=account)
    account.refresh_from_db()
    return account


def test_incremental_sync_lists_only_the_changes_between_full_listings(incremental_account, monkeypatch):
    # given: a full sync happened and left a provider-side cursor
    account = incremental_account
    assert account.sync_cursor and account.last_full_sync_at is not None
    driver = services.build_driver(account=account)
    calls = Counting(driver, monkeypatch)
    add_image(driver, "img-new")
    driver.destroy_image("img1")

    # when
    result = sync.catalog_sync(account=account)

    # then: the new image arrived without a full listing; a vanished one needs a full listing
    assert (calls.full, calls.changes) == (0, 1)
    assert result.incremental and result.images.created == 1 and result.images.missing == 0
    assert Image.objects.get(account=account, external_id="img-new").missing_since is None
    assert Image.objects.get(account=account, external_id="img1").missing_since is None
    run = SyncRun.objects.filter(account=account).first()
    assert (run.kind, run.outcome, run.images_added) == ("incremental", "succeeded", 1)

    # when: the full-listing interval has passed
    two_hours_ago = timezone.now() - timedelta(hours=2)
    ProviderAccount.objects.filter(pk=account.pk).update(last_full_sync_at=two_hours_ago)
    account.refresh_from_db()
    result = sync.catalog_sync(account=account)

    # then
    assert (calls.full, calls.changes) == (1, 1) and not result.incremental
    assert result.images.missing == 1
    assert Image.objects.get(account=account, external_id="img1").missing_since is not None


def test_a_full_listing_can_be_forced(incremental_account, monkeypatch):
    calls = Counting(services.build_driver(account=incremental_account), monkeypatch)
    assert not sync.catalog_sync(account=incremental_account, full=True).incremental
    assert (calls.full, calls.changes) == (1, 0)


def test_the_cursor_is_the_newest_provider_time_seen(incremental_account):
    driver = services.build_driver(account=incremental_account)
    add_image(driver, "img-later")
    sync.catalog_sync(account=incremental_account)
    incremental_account.refresh_from_db()
    newest = max(i.updated_at for i in driver.list_images())
    assert incremental_account.sync_cursor == newest


def test_drivers_without_change_listings_always_list_everything(synced_account, monkeypatch):
    calls = Counting(services.build_driver(account=synced_account), monkeypatch)
    assert not sync.catalog_sync(account=synced_account).incremental
    assert (calls.full, calls.changes) == (1, 0)


def test_every_sync_is_recorded_as_a_run(api_user):
    account = make_account("runs", users=[api_user], params={"page_size": 2})
    sync.catalog_sync(account=account)
    run = SyncRun.objects.get(account=account)
    assert (run.kind, run.outcome, run.pages, run.images_listed, run.images_added) == (
        "full",
        "succeeded",
        2,
        3,
        3,
    )
    assert run.instances_listed == 4 and run.finished_at >= run.started_at and run.duration >= 0
    account.params = {"page_size": 2, "list_fault_after_pages": 1}
    account.save()
    with pytest.raises(Unavailable):
        sync.catalog_sync(account=account)
    failed = SyncRun.objects.filter(account=account).first()
    assert failed.outcome == "failed" and "Unavailable" in failed.error


def test_changed_rows_record_the_catalog_version_they_changed_in(synced_account):
    # given
    first = synced_account.catalog_version
    assert set(Image.objects.values_list("changed_version", flat=True)) == {first}
    driver = services.build_driver(account=synced_account)
    add_image(driver, "img-added")
    driver.destroy_image("img2")

    # when
    sync.catalog_sync(account=synced_account)

    # then: one new version; unchanged rows keep theirs
    synced_account.refresh_from_db()
    second = synced_account.catalog_version
    assert second == first + 1
    versions = dict(Image.objects.values_list("external_id", "changed_version"))
    assert versions == {"img1": first, "img3": first, "img-added": second, "img2": second}

    # and an unchanged catalog moves nothing
    sync.catalog_sync(account=synced_account)
    synced_account.refresh_from_db()
    assert synced_account.catalog_version == second


def test_rows_vanished_longer_than_the_retention_are_purged_and_raise_the_feed_floor(
    synced_account, settings
):
    # given: img2 vanished two weeks ago, with an operation pointing at it
    settings.DELTAWEB_VANISHED_RETENTION_SECONDS = 7 * 24 * 3600
    services.build_driver(account=synced_account).destroy_image("img2")
    sync.catalog_sync(account=synced_account)
    gone = Image.objects.get(external_id="img2")
    Image.objects.filter(pk=gone.pk).update(missing_since=timezone.now() - timedelta(days=14))
    op = Operation.objects.create(
        account=synced_account, image=gone, kind="delete_image", status="SUCCEEDED", deadline=timezone.now()
    )

    # when
    sync.catalog_sync(account=synced_account)

    # then
    assert not Image.objects.filter(external_id="img2").exists()
    op.refresh_from_db()
    assert op.image_id is None
    synced_account.refresh_from_db()
    assert synced_account.feed_floor == gone.changed_version
