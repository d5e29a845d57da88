"""Replayed answers are the full path's, byte for byte, and never outlive what they depend on."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from images import services
from images.api import base
from images.api.replay import replay_cache
from images.models import Image
from tests.conftest import basic, make_account

pytestmark = pytest.mark.django_db

READS = [
    ("/api/images", {"HTTP_ACCEPT": "application/xml"}),
    ("/api/images", {"HTTP_ACCEPT": "application/json"}),
    ("/api/images", {"HTTP_ACCEPT": "text/html"}),
    ("/api/images?architecture=x86_64&format=json", {}),
    ("/api/images?limit=1&sort=-name", {"HTTP_ACCEPT": "application/json"}),
    ("/api/images/img1", {"HTTP_ACCEPT": "application/xml"}),
    ("/api/images/img2", {"HTTP_ACCEPT": "*/*; q=0.5, application/xml"}),
    ("/api;driver=mock/images/img1", {"HTTP_ACCEPT": "application/json"}),
    ("/api/images", {"HTTP_ACCEPT": "application/xml", "HTTP_X_DELTACLOUD_DRIVER": "mock"}),
]


def answer(client, path, headers):
    response = client.get(path, **headers)
    return response.status_code, sorted(response.items()), response.content


@pytest.fixture
def views_run(monkeypatch):
    """How many requests reached a view (the full path)."""
    calls = []
    original = base.DeltacloudViewSet.initial

    def initial(self, request, *args, **kwargs):
        calls.append(request.path)
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(base.DeltacloudViewSet, "initial", initial)
    return calls


@pytest.mark.parametrize(("path", "headers"), READS)
def test_a_replayed_answer_is_the_full_paths_byte_for_byte(
    auth_client, synced_account, views_run, path, headers
):
    answer(auth_client, path, headers)  # verifies the password (no one-query row yet)
    full = answer(auth_client, path, headers)  # the full path, with the one query: recorded
    assert full[0] == 200 and len(views_run) == 2
    with CaptureQueriesContext(connection) as queries:
        replayed = answer(auth_client, path, headers)
    assert replayed == full
    assert len(views_run) == 2, "the view ran again"
    assert len(queries) == 1


def test_a_revalidation_is_replayed_as_a_304(auth_client, synced_account, views_run):
    etag = auth_client.get("/api/images/img1")["ETag"]
    full = answer(auth_client, "/api/images/img1", {"HTTP_IF_NONE_MATCH": etag})
    replayed = answer(auth_client, "/api/images/img1", {"HTTP_IF_NONE_MATCH": etag})
    assert full[0] == 304 and replayed == full and full[2] == b""
    assert len(views_run) == 2


def test_a_catalog_change_is_seen_at_once(auth_client, synced_account):
    for _ in range(3):
        before = auth_client.get("/api/images", HTTP_ACCEPT="application/json").json()
    image = Image.objects.get(account=synced_account, external_id="img1")
    services.catalog_touch(account=synced_account, image_ids=[image.pk])
    Image.objects.filter(pk=image.pk).update(name="renamed")
    after = auth_client.get("/api/images", HTTP_ACCEPT="application/json").json()
    assert after != before and "renamed" in str(after)


def test_a_sync_time_change_is_seen_at_once(auth_client, synced_account):
    for _ in range(3):
        before = auth_client.get("/api/images")["X-Deltaweb-Synced-At"]
    synced_account.last_sync_succeeded_at = synced_account.last_sync_succeeded_at.replace(year=2030)
    synced_account.save(update_fields=["last_sync_succeeded_at"])
    after = auth_client.get("/api/images")["X-Deltaweb-Synced-At"]
    assert after != before and after.startswith("2030")


def test_a_changed_password_ends_replays(auth_client, synced_account, api_user):
    for _ in range(3):
        assert auth_client.get("/api/images").status_code == 200
    api_user.set_password("another")
    api_user.save()
    assert auth_client.get("/api/images").status_code == 401


def test_a_deactivated_user_gets_no_replay(auth_client, synced_account, api_user):
    for _ in range(3):
        assert auth_client.get("/api/images").status_code == 200
    get_user_model().objects.filter(pk=api_user.pk).update(is_active=False)
    assert auth_client.get("/api/images").status_code == 401


def test_a_revoked_grant_ends_replays(auth_client, synced_account, api_user):
    for _ in range(3):
        assert auth_client.get("/api/images").status_code == 200
    synced_account.users.remove(api_user)
    assert auth_client.get("/api/images").status_code == 403


def test_another_user_never_gets_a_recorded_answer(client, synced_account, api_user):
    other = get_user_model().objects.create_user("other", password="other-password")
    make_account("other", users=[other], is_default=True)
    client.credentials(HTTP_AUTHORIZATION=basic())
    for _ in range(3):
        mine = client.get("/api/images", HTTP_ACCEPT="application/json")
    client.credentials(HTTP_AUTHORIZATION=basic("other", "other-password"))
    theirs = [client.get("/api/images", HTTP_ACCEPT="application/json") for _ in range(3)]
    # The other account was never synced: told to come back, never shown mockuser's catalog.
    assert all(r.status_code == 503 for r in theirs) and mine.status_code == 200


def test_a_wrong_password_gets_no_replay(client, synced_account):
    client.credentials(HTTP_AUTHORIZATION=basic())
    for _ in range(3):
        assert client.get("/api/images").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=basic("mockuser", "wrong"))
    assert client.get("/api/images").status_code == 401


def test_writes_and_streamed_answers_are_not_recorded(auth_client, synced_account, settings):
    settings.DELTAWEB_STREAM_ROWS = 1  # every whole list streams
    for _ in range(3):
        response = auth_client.get("/api/images")
        b"".join(response.streaming_content)
    assert auth_client.delete("/api/images/img3").status_code == 204
    assert not replay_cache._entries
