"""Replayed answers are the full path's, byte for byte, and never outlive what they depend on."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.signals import request_started
from django.db import connection
from django.test.utils import CaptureQueriesContext

from images import services
from images.api import base, context
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


# -- the WSGI front (deltaweb.wsgi.application): a hit never enters Django's handler ----------


def wsgi_get(path: str, query: str = "", **headers: str) -> tuple[str, list, bytes]:
    from deltaweb.wsgi import application

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "HTTP_AUTHORIZATION": basic(),
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        **{"HTTP_" + name.upper(): value for name, value in headers.items()},
    }
    started = []

    def start_response(status, response_headers, exc_info=None):
        started.append((status, sorted(response_headers)))

    chunks = application(environ, start_response)
    body = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return started[0][0], started[0][1], body


@pytest.fixture
def handler_runs():
    """Requests that reached Django's handler (its request_started signal)."""
    seen = []

    def started(sender, environ, **kwargs):
        seen.append(environ["PATH_INFO"])

    request_started.connect(started)
    yield seen
    request_started.disconnect(started)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("/api/images", "", {"accept": "application/xml"}),
        ("/api/images", "format=json", {}),
        ("/api/images/img2", "", {"accept": "*/*; q=0.5, application/xml", "x_deltacloud_driver": "mock"}),
    ],
)
def test_the_front_answers_a_repeat_with_the_full_paths_bytes_and_one_query(
    synced_account, api_user, handler_runs, path, query, headers
):
    wsgi_get(path, query, **headers)  # verifies the password
    full = wsgi_get(path, query, **headers)  # the one-query full path: recorded
    assert full[0] == "200 OK" and len(handler_runs) == 2
    with CaptureQueriesContext(connection) as queries:
        replayed = wsgi_get(path, query, **headers)
    assert replayed == full
    assert len(handler_runs) == 2, "Django's handler ran for a recorded answer"
    assert len(queries) == 1


@pytest.mark.django_db(transaction=True)
def test_the_front_hands_a_stale_answer_to_the_full_path_with_the_row_it_read(
    synced_account, api_user, handler_runs
):
    for _ in range(2):
        before = wsgi_get("/api/images/img1", "format=json")
    image = Image.objects.get(account=synced_account, external_id="img1")
    services.catalog_touch(account=synced_account, image_ids=[image.pk])
    Image.objects.filter(pk=image.pk).update(name="renamed")
    with CaptureQueriesContext(connection) as queries:
        after = wsgi_get("/api/images/img1", "format=json")
    assert after[0] == "200 OK" and b"renamed" in after[2] and after != before
    assert len(handler_runs) == 3
    # The front's one query found the change; the full path used the row it read.
    account_query = context._user_and_account_sql().split(" FROM", 1)[0]
    sent = [q["sql"].split(" FROM", 1)[0] for q in queries]
    assert sent.count(account_query) == 1 and len(sent) == 2


@pytest.mark.django_db(transaction=True)
def test_the_front_never_answers_other_deltacloud_headers_or_bodies(synced_account, api_user, handler_runs):
    for _ in range(2):
        wsgi_get("/api/images", "format=json")
    status, _, body = wsgi_get("/api/images", "format=json", x_deltacloud_extra="a\x01b")
    assert status.startswith("400") and len(handler_runs) == 3
    assert "X-Deltacloud-Extra" in json.loads(body)["message"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("/api", "", {"accept": "application/xml"}),
        ("/api/", "format=json", {}),
        ("/api;driver=ec2", "", {"accept": "*/*; q=0.5, application/xml"}),
        ("/api/hardware_profiles/m1-small", "format=xml", {"x_deltacloud_driver": "mock"}),
        ("/api/instance_states", "", {"accept": "application/json"}),
        ("/api/drivers", "", {"accept": "text/html"}),
    ],
)
def test_a_description_of_a_driver_is_replayed_without_a_query(handler_runs, path, query, headers):
    full = wsgi_get(path, query, **headers)
    assert full[0] == "200 OK" and len(handler_runs) == 1
    with CaptureQueriesContext(connection) as queries:
        replayed = wsgi_get(path, query, **headers)
    assert replayed == full and len(handler_runs) == 1 and len(queries) == 0


@pytest.mark.django_db(transaction=True)
def test_force_auth_is_never_answered_from_a_recording(api_user, handler_runs):
    for _ in range(2):
        assert wsgi_get("/api", "force_auth=1")[0] == "200 OK"
    get_user_model().objects.filter(pk=api_user.pk).update(is_active=False)
    assert wsgi_get("/api", "force_auth=1")[0].startswith("401")
    assert len(handler_runs) == 3


def test_a_credential_is_verified_again_as_often_as_without_replays(
    auth_client, synced_account, views_run, settings
):
    settings.DELTAWEB_AUTH_CACHE_SECONDS = 1
    for _ in range(3):
        assert auth_client.get("/api/images").status_code == 200
    assert len(views_run) == 2  # verified, recorded, replayed
    time.sleep(1.2)
    assert auth_client.get("/api/images").status_code == 200
    assert len(views_run) == 3, "a recorded answer outlived its credential's verification"


def test_recorded_answers_never_hold_the_credential(auth_client, synced_account):
    for _ in range(3):
        auth_client.get("/api/images")
    assert replay_cache._entries
    for key in replay_cache._entries:
        assert basic() not in key and not any("mockpassword" in str(part) for part in key)
