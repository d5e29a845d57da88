"""Pagination, sorting and streamed whole lists (issue 9, items 3 and 5)."""

import re
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from images.api.render_cache import render_cache
from images.models import Image

pytestmark = pytest.mark.django_db

NEXT = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def add_images(account, ids, **fields):
    now = timezone.now()
    Image.objects.bulk_create(
        Image(
            account=account,
            external_id=i,
            name=fields.get("name", lambda x: f"name {x}")(i),
            owner_id="someone",
            architecture="x86_64",
            state=fields.get("state", lambda x: "AVAILABLE")(i),
            status="AVAILABLE",
            creation_time=fields.get("creation_time", lambda x: None)(i),
            hardware_profiles=["m1-small"],
            first_seen=now,
            last_seen=now,
        )
        for i in ids
    )
    account.catalog_version += 1
    account.save(update_fields=["catalog_version"])


def ids_of(response):
    if response["Content-Type"] == "application/json":
        return [i["id"] for i in response.json()["images"]]
    return [e.get("id") for e in ElementTree.fromstring(response.content)]


def next_url(response):
    link = response.get("Link")
    return NEXT.match(link).group("url").removeprefix("http://testserver") if link else None


def walk(client, url, fmt="xml"):
    seen, pages = [], 0
    while url:
        response = client.get(url, HTTP_ACCEPT=f"application/{fmt}")
        assert response.status_code == 200, response.content
        seen += ids_of(response)
        url = next_url(response)
        pages += 1
    return seen, pages


@pytest.fixture
def catalog(synced_account):
    # 3 mock images (img1..img3) plus 20 with names in reverse order and some times missing
    add_images(
        synced_account,
        [f"gen-{i:02d}" for i in range(20)],
        name=lambda x: f"n{99 - int(x[4:]):02d}",
        state=lambda x: "PENDING" if int(x[4:]) % 3 == 0 else "AVAILABLE",
        creation_time=lambda x: None if int(x[4:]) % 4 == 0 else f"2012-10-{int(x[4:]) % 7 + 10}",
    )
    return synced_account


def all_rows(account):
    return list(
        Image.objects.filter(account=account, missing_since__isnull=True, deleted_at__isnull=True).values(
            "external_id", "name", "state", "creation_time"
        )
    )


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_without_parameters_the_whole_list_and_no_link(auth_client, catalog, fmt):
    response = auth_client.get("/api/images", HTTP_ACCEPT=f"application/{fmt}")
    assert len(ids_of(response)) == 23
    assert "Link" not in response


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_limit_pages_through_everything_once_in_id_order(auth_client, catalog, fmt):
    seen, pages = walk(auth_client, "/api/images?limit=5", fmt)
    assert seen == sorted(r["external_id"] for r in all_rows(catalog))
    assert pages == 5


def test_the_next_page_is_in_the_json_body_too(auth_client, catalog):
    response = auth_client.get("/api/images?limit=5", HTTP_ACCEPT="application/json")
    assert response.json()["next"] == f"http://testserver{next_url(response)}"
    assert "marker=gen-04" in response.json()["next"]


def test_xml_pages_keep_only_image_children(auth_client, catalog):
    response = auth_client.get("/api/images?limit=5", HTTP_ACCEPT="application/xml")
    root = ElementTree.fromstring(response.content)
    assert root.tag == "images"
    assert [child.tag for child in root] == ["image"] * 5


def _key(name, descending):
    def key(row):
        value = row[name]
        # PostgreSQL: NULLs last ascending, first descending; ties by id in the same direction
        return (value is None, value or "", row["external_id"])

    return key


@pytest.mark.parametrize(
    "sort", ["id", "name", "-name", "creation_time", "-creation_time", "state", "-state"]
)
@pytest.mark.parametrize("limit", [4, 7])
def test_sorted_pages_match_the_sorted_list(auth_client, catalog, sort, limit):
    column = {"id": "external_id"}.get(sort.lstrip("-"), sort.lstrip("-"))
    descending = sort.startswith("-")
    rows = sorted(all_rows(catalog), key=_key(column, descending), reverse=descending)
    expected = [r["external_id"] for r in rows]
    seen, _ = walk(auth_client, f"/api/images?limit={limit}&sort={sort}")
    assert seen == expected
    whole = auth_client.get(f"/api/images?sort={sort}", HTTP_ACCEPT="application/xml")
    assert ids_of(whole) == expected


def test_pages_survive_a_catalog_that_changes_between_them(auth_client, catalog):
    first = auth_client.get("/api/images?limit=6&sort=name", HTTP_ACCEPT="application/xml")
    seen = ids_of(first)
    # meanwhile: the marker image is deleted, images appear before and after the marker
    Image.objects.filter(account=catalog, external_id=seen[-1]).update(deleted_at=timezone.now())
    add_images(catalog, ["aaa-early", "zzz-late"], name=lambda x: "a" if x == "aaa-early" else "zz")
    rest, _ = walk(auth_client, next_url(first))
    everything = seen + rest
    assert len(everything) == len(set(everything))  # nothing twice
    present_throughout = {r["external_id"] for r in all_rows(catalog)} - {"aaa-early", "zzz-late"}
    assert present_throughout <= set(everything)  # nothing skipped
    assert (
        "zzz-late" in rest and "aaa-early" not in everything
    )  # keyset order: before the marker stays behind


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=-3", "limit"),
        ("sort=size", "sort"),
        ("sort=--name", "sort"),
        ("marker=no-such-image&limit=2", "marker"),
        ("marker=", "marker"),
    ],
)
@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_bad_paging_parameters_are_400(auth_client, catalog, query, message, fmt):
    response = auth_client.get(f"/api/images?{query}", HTTP_ACCEPT=f"application/{fmt}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_limit_is_capped_by_the_setting(auth_client, catalog, settings):
    settings.DELTAWEB_PAGE_MAX = 4
    response = auth_client.get("/api/images?limit=1000", HTTP_ACCEPT="application/xml")
    assert len(ids_of(response)) == 4
    assert "limit=4" in response["Link"]


def test_a_marker_alone_pages_with_the_largest_limit(auth_client, catalog, settings):
    settings.DELTAWEB_PAGE_MAX = 5
    response = auth_client.get("/api/images?marker=gen-04", HTTP_ACCEPT="application/xml")
    assert ids_of(response) == [f"gen-{i:02d}" for i in range(5, 10)]


def test_filters_combine_with_pages(auth_client, catalog):
    seen, _ = walk(auth_client, "/api/images?state=pending&limit=2")
    assert seen == sorted(r["external_id"] for r in all_rows(catalog) if r["state"] == "PENDING")


def test_instances_page_too(auth_client, synced_account):
    seen, pages = walk(auth_client, "/api/instances?limit=1")
    whole = auth_client.get("/api/instances", HTTP_ACCEPT="application/xml")
    assert seen == ids_of(whole) and pages == len(seen)


def test_a_page_costs_the_same_queries_whatever_the_catalog_size_and_never_offset_or_count(
    auth_client, catalog
):
    def page_queries():
        render_cache.clear()
        with CaptureQueriesContext(connection) as ctx:
            response = auth_client.get(
                "/api/images?limit=5&marker=gen-04&sort=name", HTTP_ACCEPT="application/xml"
            )
        assert response.status_code == 200
        return [q["sql"] for q in ctx.captured_queries]

    auth_client.get("/api/images")
    small = page_queries()
    add_images(catalog, [f"more-{i:04d}" for i in range(2000)])
    large = page_queries()
    assert len(large) == len(small)
    for sql in large:
        assert "OFFSET" not in sql.upper() and "COUNT(" not in sql.upper()


# -- whole lists too big to keep are streamed -----------------------------------------


@pytest.mark.parametrize("fmt", ["xml", "json", "html"])
def test_big_lists_stream_the_same_bytes(auth_client, catalog, settings, fmt):
    kept = auth_client.get(f"/api/images?format={fmt}")
    assert not kept.streaming
    render_cache.clear()
    settings.DELTAWEB_STREAM_ROWS = 5
    streamed = auth_client.get(f"/api/images?format={fmt}")
    assert streamed.streaming
    assert b"".join(streamed.streaming_content) == kept.content
    assert streamed["Content-Type"] == kept["Content-Type"]
    assert len(render_cache._items) == 0  # big documents are not kept


def test_a_streamed_list_revalidates_without_a_body(auth_client, catalog, settings):
    settings.DELTAWEB_STREAM_ROWS = 5
    first = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    etag = first["ETag"]
    assert etag.startswith('W/"')
    b"".join(first.streaming_content)
    with CaptureQueriesContext(connection) as ctx:
        again = auth_client.get("/api/images", HTTP_ACCEPT="application/xml", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert not any("images_image" in q["sql"] for q in ctx.captured_queries)
    add_images(catalog, ["changed"])
    changed = auth_client.get("/api/images", HTTP_ACCEPT="application/xml", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert b"id='changed'" in b"".join(changed.streaming_content)  # read to the end: the cursor closes


def test_head_of_a_streamed_list_has_its_headers_and_no_body(auth_client, catalog, settings):
    settings.DELTAWEB_STREAM_ROWS = 5
    get = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    b"".join(get.streaming_content)
    head = auth_client.head("/api/images", HTTP_ACCEPT="application/xml")
    assert head.status_code == 200 and head.content == b""
    assert head["ETag"] == get["ETag"] and head["Content-Type"] == "application/xml"
