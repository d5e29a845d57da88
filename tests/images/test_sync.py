"""Catalog sync: bulk merge, missing images, all-or-nothing listings, one sync at a time."""

from __future__ import annotations

import pytest
from django.utils import timezone

from images import services, sync
from images.models import Image, ProviderAccount
from providers.exceptions import AuthFailure, Unavailable
from tests.conftest import make_account

pytestmark = pytest.mark.django_db


def visible_ids(account):
    return sorted(
        Image.objects.filter(
            account=account, missing_since__isnull=True, deleted_at__isnull=True
        ).values_list("external_id", flat=True)
    )


def test_first_sync_fills_the_cache(mock_account):
    result = sync.catalog_sync(account=mock_account)
    assert (result.images.created, result.images.updated, result.images.missing) == (3, 0, 0)
    assert (result.instances.created, result.instances.missing) == (4, 0)
    img1 = Image.objects.get(account=mock_account, external_id="img1")
    assert (img1.name, img1.description, img1.owner_id, img1.architecture) == (
        "img1",
        "Fedora 10",
        "fedoraproject",
        "x86_64",
    )
    assert (img1.state, img1.status, img1.root_type) == ("AVAILABLE", "AVAILABLE", "transient")
    assert img1.hardware_profiles == ["m1-small", "m1-large", "m1-xlarge", "opaque"]
    mock_account.refresh_from_db()
    assert mock_account.owner_identity == "mockuser"
    assert mock_account.last_sync_succeeded_at is not None and mock_account.last_sync_error == ""


def test_vanished_images_get_missing_since_and_come_back(synced_account):
    driver = services.build_driver(account=synced_account)
    driver.destroy_image("img2")
    result = sync.catalog_sync(account=synced_account)
    assert result.images.missing == 1
    gone = Image.objects.get(external_id="img2")
    assert gone.missing_since is not None  # kept, but out of API lists
    assert visible_ids(synced_account) == ["img1", "img3"]
    assert gone.last_seen <= gone.missing_since

    # the provider lists it again (same id): it is restored
    driver.store.put(
        "images",
        {
            "id": "img2",
            "name": "img2",
            "description": "Fedora 10",
            "owner_id": "fedoraproject",
            "architecture": "i386",
            "state": "AVAILABLE",
            "creation_time": "Thu Oct 25 14:27:53 CEST 2012",
        },
    )
    sync.catalog_sync(account=synced_account)
    assert Image.objects.get(external_id="img2").missing_since is None


def test_changed_images_are_updated_in_place(synced_account):
    driver = services.build_driver(account=synced_account)
    with driver.store.locked():
        obj = driver.store.get("images", "img3")
        obj["description"] = "JBoss 7"
        driver.store.put("images", obj)
    pk = Image.objects.get(external_id="img3").pk
    result = sync.catalog_sync(account=synced_account)
    assert (result.images.created, result.images.updated, result.images.missing) == (0, 1, 0)
    row = Image.objects.get(external_id="img3")
    assert (row.pk, row.description) == (pk, "JBoss 7")


@pytest.mark.parametrize("fault_after", [0, 1])
def test_a_listing_that_fails_half_way_changes_nothing(api_user, fault_after):
    # given: 3 pages of one image each, synced once
    account = make_account("paged", users=[api_user], params={"page_size": 1})
    sync.catalog_sync(account=account)
    account.refresh_from_db()
    before = list(Image.objects.order_by("pk").values())
    version = account.catalog_version
    services.build_driver(account=account).destroy_image("img1")
    # when: the provider fails after some pages
    account.params = {"page_size": 1, "list_fault_after_pages": fault_after}
    account.save()
    with pytest.raises(Unavailable):
        sync.catalog_sync(account=account)
    # then: nothing changed, and the failure is recorded
    assert list(Image.objects.order_by("pk").values()) == before
    account.refresh_from_db()
    assert account.catalog_version == version
    assert account.last_sync_error.startswith("Unavailable: The mock provider failed after")
    assert account.consecutive_failures == 1 and not account.needs_attention


def test_repeated_failures_flag_the_account(api_user):
    account = make_account("flaky", users=[api_user], params={"list_fault_after_pages": 0})
    for _ in range(3):
        with pytest.raises(Unavailable):
            sync.catalog_sync(account=account)
    account.refresh_from_db()
    assert account.consecutive_failures == 3 and account.needs_attention
    assert account.next_sync_at > timezone.now()
    # a success clears the flag
    account.params = {}
    account.save()
    sync.catalog_sync(account=account)
    account.refresh_from_db()
    assert (account.consecutive_failures, account.needs_attention) == (0, False)


def test_rejected_credentials_flag_at_once_and_leak_nothing(api_user):
    account = make_account(
        "badcreds", users=[api_user], credentials={"username": "mockuser", "password": "s3cr3t-wrong"}
    )
    with pytest.raises(AuthFailure):
        sync.catalog_sync(account=account)
    account.refresh_from_db()
    assert account.needs_attention
    assert "s3cr3t-wrong" not in account.last_sync_error
    assert "s3cr3t-wrong" not in account.credentials_encrypted


def test_one_sync_per_account_at_a_time(mock_account, monkeypatch):
    # given: a second sync request arrives while the first is listing
    driver_class = type(services.build_driver(account=mock_account))
    original = driver_class.iter_image_pages
    listings, overlapping = [], []

    def listing(self):
        listings.append(1)
        if len(listings) == 1:
            try:
                sync.catalog_sync(account=ProviderAccount.objects.get(pk=mock_account.pk))
            except sync.SyncInProgress as exc:
                overlapping.append(exc)
        yield from original(self)

    monkeypatch.setattr(driver_class, "iter_image_pages", listing)
    # when
    sync.catalog_sync(account=mock_account)
    # then: one listing ran; the other request was refused, and the lock is free again
    assert len(listings) == 1 and len(overlapping) == 1
    sync.catalog_sync(account=mock_account)
    assert len(listings) == 2


def test_a_crashed_sync_lock_expires(mock_account):
    from datetime import timedelta

    ProviderAccount.objects.filter(pk=mock_account.pk).update(
        sync_lock_until=timezone.now() + timedelta(minutes=5), sync_lock_token="dead-worker"
    )
    with pytest.raises(sync.SyncInProgress):
        sync.catalog_sync(account=mock_account)
    ProviderAccount.objects.filter(pk=mock_account.pk).update(
        sync_lock_until=timezone.now() - timedelta(seconds=1)
    )
    assert sync.catalog_sync(account=mock_account).images.created == 3


def test_sync_requests_are_merged(mock_account):
    assert sync.sync_request(account_id=mock_account.pk) is True
    assert sync.sync_request(account_id=mock_account.pk) is False  # queued already
    sync.catalog_sync(account=mock_account)  # the queued sync ran
    assert sync.sync_request(account_id=mock_account.pk) is True


def test_an_unknown_id_is_asked_of_the_provider_once(auth_client, synced_account, monkeypatch):
    driver = services.build_driver(account=synced_account)
    calls = []
    original = type(driver).get_image

    def counting(self, image_id):
        calls.append(image_id)
        return original(self, image_id)

    monkeypatch.setattr(type(driver), "get_image", counting)
    for _ in range(3):
        assert auth_client.get("/api/images/ghost", HTTP_ACCEPT="application/xml").status_code == 404
    assert calls == ["ghost"]
    # an image the cache has not seen yet is found and cached
    driver.create_image(instance_id="inst1", name="fresh")
    assert auth_client.get("/api/images/fresh", HTTP_ACCEPT="application/xml").status_code == 200
    assert "fresh" in visible_ids(synced_account)


def test_sync_command(synced_account, capsys):
    from django.core.management import call_command

    call_command("sync_catalog", "mock")
    assert "mock: 3 images (0 new, 0 changed, 0 missing)" in capsys.readouterr().out


def test_a_never_synced_catalog_is_503_while_the_worker_fills_it(
    auth_client, mock_account, monkeypatch, django_capture_on_commit_callbacks
):
    from images import tasks

    sent = []
    monkeypatch.setattr(tasks.catalog_sync_task, "apply_async", lambda args, countdown=0: sent.append(*args))
    with django_capture_on_commit_callbacks(execute=True):
        first = auth_client.get("/api/images?format=json")
        second = auth_client.get("/api/instances?format=json")
    assert (first.status_code, second.status_code) == (503, 503)
    assert first["Retry-After"] == "10"
    assert first.json()["message"] == "The catalog of account 'mock' has not been synced yet"
    assert sent == [mock_account.pk]  # one sync queued, the second request merged
    tasks.catalog_sync_task(mock_account.pk)
    assert auth_client.get("/api/images?format=json").status_code == 200
