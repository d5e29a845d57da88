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
    auth_client.get("/api/images")  # credentials verified and remembered
    small, _ = count_queries(auth_client, path)
    grow_catalog(synced_account, 500)
    large, response = count_queries(auth_client, path)
    assert large == small
    assert small <= 3  # user, account, images
    if "owner_id" not in path:
        assert response.content.count(b"<image ") >= 500


def test_a_warm_list_costs_two_queries(auth_client, synced_account):
    auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    with CaptureQueriesContext(connection) as ctx:
        assert auth_client.get("/api/images", HTTP_ACCEPT="application/xml").status_code == 200
    assert len(ctx.captured_queries) == 2  # the user (verification cached), the account


def test_show_queries(auth_client, synced_account):
    auth_client.get("/api/images")
    render_cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        assert auth_client.get("/api/images/img1", HTTP_ACCEPT="application/xml").status_code == 200
    assert len(ctx.captured_queries) == 3
