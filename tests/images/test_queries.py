"""Reads cost a fixed number of queries, whatever the catalog size."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from images.api.render_cache import render_cache
from images.models import Image

pytestmark = pytest.mark.django_db


def grow_catalog(account, count):
    now = timezone.now()
    Image.objects.bulk_create(
        Image(
            account=account,
            external_id=f"gen-{i:05d}",
            name=f"gen {i}",
            owner_id="someone",
            architecture="x86_64",
            state="AVAILABLE",
            status="AVAILABLE",
            hardware_profiles=["m1-small"],
            first_seen=now,
            last_seen=now,
        )
        for i in range(count)
    )
    account.catalog_version += 1
    account.save(update_fields=["catalog_version"])


def count_queries(client, path):
    render_cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path, HTTP_ACCEPT="application/xml")
    assert response.status_code == 200
    return len(ctx.captured_queries), response


@pytest.mark.parametrize(
    "path", ["/api/images", "/api/images?architecture=x86_64", "/api/images?owner_id=self"]
)
def test_list_queries_do_not_grow_with_the_catalog(auth_client, synced_account, path):
    # A warm process: credentials verified and remembered, the remembered path's statement prepared.
    auth_client.get("/api/images")
    auth_client.get("/api/images")
    small, _ = count_queries(auth_client, path)
    grow_catalog(synced_account, 500)
    large, response = count_queries(auth_client, path)
    assert large == small
    assert small <= 2  # account (with the user), images
    if "owner_id" not in path:
        assert response.content.count(b"<image ") >= 500


@pytest.mark.parametrize(
    "path",
    [
        "/api/images",
        "/api/images/img1",
        "/api/instances",
        "/api/instances/inst1",
        "/api/images?architecture=x86_64",
        "/api/images?owner_id=self",
        "/api/images?limit=2&sort=-name",
        "/api;driver=mock/images",
    ],
)
@pytest.mark.parametrize("fmt", ["xml", "json", "html"])
def test_a_warm_authenticated_cached_read_costs_one_query(auth_client, synced_account, path, fmt):
    sep = "&" if "?" in path else "?"
    auth_client.get(f"{path}{sep}format={fmt}")  # credentials verified and remembered, document rendered
    with CaptureQueriesContext(connection) as ctx:
        assert auth_client.get(f"{path}{sep}format={fmt}").status_code == 200
    assert len(ctx.captured_queries) == 1  # the account, with the user row that confirms the credentials


def test_a_matching_conditional_get_costs_one_query_and_no_rendering(
    auth_client, synced_account, monkeypatch
):
    etag = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")["ETag"]
    from images.api.representations.images import Images

    monkeypatch.setattr(Images, "xml", lambda *a, **k: pytest.fail("rendered for a 304"))
    with CaptureQueriesContext(connection) as ctx:
        response = auth_client.get("/api/images", HTTP_ACCEPT="application/xml", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and response.content == b""
    assert len(ctx.captured_queries) == 1


def test_show_queries(auth_client, synced_account):
    auth_client.get("/api/images")
    render_cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        assert auth_client.get("/api/images/img1", HTTP_ACCEPT="application/xml").status_code == 200
    assert len(ctx.captured_queries) == 2  # account (with the user), the image
