"""ETag on every 200, conditional GET, caching headers, and the catalog version."""

import hashlib

import pytest
from django.conf import settings

from images import services, sync

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/images",
        "/api/images/img1",
        "/api/instances",
        "/api/instances/inst1",
        "/api/hardware_profiles",
        "/api/instance_states",
        "/api/drivers",
        "/api/realms",
    ],
)
def test_every_200_has_an_etag_of_its_body(auth_client, synced_account, path):
    response = auth_client.get(path, HTTP_ACCEPT="application/xml")
    assert response.status_code == 200
    assert response["ETag"] == '"' + hashlib.md5(response.content).hexdigest() + '"'
    assert response["Cache-Control"] == "max-age=0, private, must-revalidate"
    assert response["Server"] == "Apache-Deltacloud/1.1.3"
    assert response["X-Deltaweb-Version"] == settings.DELTAWEB_VERSION


@pytest.mark.parametrize("form", ["{}", "W/{}", "{bare}", '"other", {}', "*"])
def test_matching_if_none_match_is_304(auth_client, synced_account, form):
    etag = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")["ETag"]
    header = form.replace("{bare}", etag.strip('"')).replace("{}", etag)
    response = auth_client.get("/api/images", HTTP_ACCEPT="application/xml", HTTP_IF_NONE_MATCH=header)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


def test_etag_differs_per_format_and_filter(auth_client, synced_account):
    xml = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")["ETag"]
    json = auth_client.get("/api/images", HTTP_ACCEPT="application/json")["ETag"]
    filtered = auth_client.get("/api/images?architecture=i386", HTTP_ACCEPT="application/xml")["ETag"]
    assert len({xml, json, filtered}) == 3


def test_a_catalog_change_changes_the_etag(auth_client, synced_account):
    before = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    services.build_driver(account=synced_account).destroy_image("img2")
    sync.catalog_sync(account=synced_account)
    after = auth_client.get("/api/images", HTTP_ACCEPT="application/xml", HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    assert b"id='img2'" not in after.content


def test_an_unchanged_sync_keeps_version_and_etag(auth_client, synced_account):
    before = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")["ETag"]
    version = synced_account.catalog_version
    result = sync.catalog_sync(account=synced_account)
    assert (result.images.created, result.images.updated, result.images.missing) == (0, 0, 0)
    synced_account.refresh_from_db()
    assert synced_account.catalog_version == version
    assert auth_client.get("/api/images", HTTP_ACCEPT="application/xml")["ETag"] == before


def test_freshness_header_says_when_the_account_was_synced(auth_client, synced_account):
    response = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    assert response["X-Deltaweb-Synced-At"] == synced_account.last_sync_succeeded_at.isoformat()
