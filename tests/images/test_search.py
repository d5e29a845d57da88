"""The console's image search, indexed beside the catalog (images.search).

A search must answer exactly what the catalog holds at every moment: from the
copy for accounts whose entries are current, from the catalog rows for the
accounts whose catalog changed since.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from images import search, services, sync
from images.models import Image, ImageSearch, ImageSearchState, ProviderAccount
from tests.conftest import make_account

pytestmark = pytest.mark.django_db


def found(term: str, queryset=None) -> list[str]:
    qs = Image.objects.all() if queryset is None else queryset
    return sorted(search.filter_images(qs, term).values_list("external_id", flat=True))


def rename(account, external_id: str, name: str) -> None:
    """The cloud renames an image; the next sync writes it."""
    driver = services.build_driver(account=account)
    with driver.store.locked():
        obj = driver.store.get("images", external_id)
        obj["name"] = name
        driver.store.put("images", obj)


def test_a_sync_that_changed_the_catalog_asks_for_a_catch_up_after_it_committed(
    mock_account, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sync.catalog_sync(account=mock_account)
    assert sent == [("search_catch_up_task", (mock_account.pk,))]
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sync.catalog_sync(account=mock_account)  # nothing changed
    assert sent == []


def test_catch_up_copies_the_catalog_and_records_its_version(synced_account):
    assert ImageSearch.objects.count() == 0
    assert search.lagging_account_ids() == [synced_account.pk]
    assert search.catch_up(synced_account.pk) == 3
    rows = ImageSearch.objects.order_by("external_id").values_list("account_id", "external_id", "name")
    assert list(rows) == [(synced_account.pk, f"img{i}", f"img{i}") for i in (1, 2, 3)]
    state = ImageSearchState.objects.get(account=synced_account)
    assert state.version == ProviderAccount.objects.get(pk=synced_account.pk).catalog_version
    assert search.lagging_account_ids() == []
    assert search.catch_up(synced_account.pk) == 0  # nothing new: nothing written


def test_an_account_behind_is_searched_in_the_catalog_itself(synced_account):
    # given: entries current for a name, then the cloud renames the image and a sync writes it
    rename(synced_account, "img2", "weekly-build")
    sync.catalog_sync(account=synced_account)
    search.catch_up(synced_account.pk)
    rename(synced_account, "img2", "nightly-build")
    sync.catalog_sync(account=synced_account)
    assert search.lagging_account_ids() == [synced_account.pk]
    # then: the new name is found and the old one no longer, before any catch-up
    assert found("nightly") == ["img2"]
    assert found("weekly") == []
    # and after the catch-up, the same answers from the copy
    assert search.catch_up(synced_account.pk) == 1
    assert ImageSearch.objects.get(image__external_id="img2").name == "nightly-build"
    assert found("nightly") == ["img2"]
    assert found("weekly") == []


def test_current_and_lagging_accounts_are_searched_together(synced_account, api_user):
    other = make_account("other", users=[api_user], provider="elsewhere")
    sync.catalog_sync(account=other)
    search.catch_up(synced_account.pk)  # "other" stays behind
    assert search.lagging_account_ids() == [other.pk]
    hits = search.filter_images(Image.objects.all(), "img1").values_list("account_id", flat=True)
    assert sorted(hits) == sorted([synced_account.pk, other.pk])
    # the queryset's own filters still apply
    mine = Image.objects.filter(account=other)
    assert list(search.filter_images(mine, "img1").values_list("account_id", flat=True)) == [other.pk]


def test_every_word_must_match_and_quotes_keep_a_phrase(synced_account):
    rename(synced_account, "img1", "fedora 40 server")
    rename(synced_account, "img3", "fedora workstation")
    sync.catalog_sync(account=synced_account)
    search.catch_up(synced_account.pk)
    assert found("FEDORA") == ["img1", "img3"]
    assert found("fedora server") == ["img1"]
    assert found('"40 server"') == ["img1"]
    assert found('"server 40"') == []
    assert found("img1 fedora") == ["img1"]  # one word in the id, one in the name
    assert found("   ") == ["img1", "img2", "img3"]  # no words: no filter


def test_entries_of_images_gone_for_good_are_dropped(synced_account):
    search.catch_up(synced_account.pk)
    gone = Image.objects.get(external_id="img3").pk
    with connection.cursor() as cursor:  # as sync's purge does: no ORM cascade
        cursor.execute("DELETE FROM images_image WHERE id = %s", [gone])
    services.catalog_touch(account=synced_account)
    assert found("img3") == []
    assert search.catch_up(synced_account.pk) == 1
    assert not ImageSearch.objects.filter(pk=gone).exists()


def test_deleting_an_account_deletes_its_entries_and_state(synced_account):
    search.catch_up(synced_account.pk)
    synced_account.delete()
    assert ImageSearch.objects.count() == 0
    assert ImageSearchState.objects.count() == 0


def test_the_console_s_set_based_account_delete_drops_its_entries_too(synced_account, api_user):
    from images import console

    other = make_account("other", users=[api_user], provider="elsewhere")
    sync.catalog_sync(account=other)
    search.catch_up_lagging()
    console.account_delete(account=synced_account)
    assert set(ImageSearch.objects.values_list("account_id", flat=True)) == {other.pk}
    assert list(ImageSearchState.objects.values_list("account_id", flat=True)) == [other.pk]


def test_a_catch_up_for_an_account_that_is_gone_does_nothing():
    assert search.catch_up(987654) == 0
    assert ImageSearchState.objects.count() == 0


def test_the_sweep_catches_up_every_account_behind(synced_account, api_user):
    other = make_account("other", users=[api_user], provider="elsewhere")
    sync.catalog_sync(account=other)
    assert search.catch_up_lagging() == 2
    assert search.lagging_account_ids() == []
    assert ImageSearch.objects.count() == 6


def test_the_sweep_is_scheduled_and_search_work_goes_to_the_sync_queue():
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "images.tasks.search_catch_up_lagging_task" in schedule
    for name in ("search_catch_up_task", "search_catch_up_lagging_task"):
        assert settings.CELERY_TASK_ROUTES[f"images.tasks.{name}"] == {"queue": "sync"}


def test_a_search_costs_the_same_queries_whatever_the_number_of_accounts(synced_account, api_user):
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            found("img")
        return len(ctx.captured_queries)

    small = queries()
    for n in range(5):
        sync.catalog_sync(account=make_account(f"more{n}", users=[api_user], provider=f"p{n}"))
    assert queries() == small == 2  # the accounts behind, then the images


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")
def test_the_copy_is_trigram_indexed_and_the_catalog_no_longer():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            pytest.skip("pg_trgm is not available here: the search is unindexed")
        cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE indexname LIKE '%trgm'")
        assert sorted(cursor.fetchall()) == [
            ("images_imagesearch", "imagesearch_external_id_trgm"),
            ("images_imagesearch", "imagesearch_name_trgm"),
        ]
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")  # a few rows would be read by key
        sql, params = search.filter_images(Image.objects.all(), "nightly").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = " ".join(r[0] for r in cursor.fetchall())
    assert "imagesearch_name_trgm" in plan and "imagesearch_external_id_trgm" in plan
