"""The set-based merge: what it writes, and what it leaves alone.

On PostgreSQL the merge trusts each row's content hash; these tests pin down
that it stays honest (rows changed by other writers are still corrected)
and that an unchanged listing writes no row at all.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone
from psycopg.pq import TransactionStatus

from images import services, sync
from images.merge import CatalogMerge
from images.models import Image, ProviderAccount
from images.services import IMAGE_COLUMNS, image_stage_row
from providers.base import ImageState, ProviderImage
from tests.conftest import make_account

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'")


def image(image_id: str, description: str | None = "plain", **fields) -> ProviderImage:
    defaults = {"owner_id": "mockuser", "hardware_profiles": ("m1-small",), "extra": {"b": 1, "a": [1, 2]}}
    return ProviderImage(
        id=image_id,
        name=image_id,
        state=ImageState.AVAILABLE,
        raw_state="available",
        description=description,
        **{**defaults, **fields},
    )


def merge(account: ProviderAccount, *pages: list[ProviderImage], mark_missing: bool = True):
    """One merge of the given pages, as sync runs it (under the account's row lock)."""
    catalog = CatalogMerge(Image, IMAGE_COLUMNS)
    catalog.stage_pages(pages, image_stage_row)
    with transaction.atomic():
        current = ProviderAccount.objects.select_for_update().get(pk=account.pk).catalog_version
        now = timezone.now()
        result = catalog.merge(
            account_id=account.pk,
            now=now,
            listed_before=now,
            previous_success=None,
            version=current + 1,
            mark_missing=mark_missing,
            protect_sql=sync.IMAGE_PROTECT_SQL,
        )
        if result.changed:
            ProviderAccount.objects.filter(pk=account.pk).update(catalog_version=current + 1)
    return result


def row_versions(account) -> dict[str, tuple]:
    """Each row's physical version on PostgreSQL (xmin changes with every write)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT external_id, xmin::text FROM images_image WHERE account_id = %s", [account.pk])
        return dict(cursor.fetchall())


@pytest.fixture
def account(api_user):
    return make_account("merged", users=[api_user])


def test_new_changed_and_vanished_rows(account):
    # given
    assert merge(account, [image("a"), image("b")], [image("c")]).created == 3
    # when
    result = merge(account, [image("a"), image("b", description="changed")])
    # then
    assert (result.staged, result.created, result.updated, result.missing) == (2, 0, 1, 1)
    rows = {r.external_id: r for r in Image.objects.filter(account=account)}
    assert rows["b"].description == "changed" and rows["b"].changed_version == 2
    assert rows["a"].changed_version == 1
    assert rows["c"].missing_since is not None and rows["c"].changed_version == 2
    assert rows["a"].hardware_profiles == ["m1-small"] and rows["a"].extra == {"a": [1, 2], "b": 1}


def test_an_id_listed_twice_is_merged_from_its_last_copy(account):
    # given: pages shifting under the listing, so ids come twice
    result = merge(account, [image("a", "old"), image("b")], [image("a", "new"), image("c")])
    assert (result.staged, result.created) == (4, 3)  # rows listed, rows written
    assert Image.objects.get(account=account, external_id="a").description == "new"
    # when: an existing row comes twice, its last copy equal to what is cached
    result = merge(account, [image("a", "older"), image("b")], [image("c"), image("a", "new")])
    # then: nothing changes
    assert not result.changed
    assert Image.objects.get(account=account, external_id="a").description == "new"
    # and when the last copy differs, that is what is written
    merge(account, [image("a", "new"), image("b"), image("c")], [image("a", "newest")])
    assert Image.objects.get(account=account, external_id="a").description == "newest"


def test_an_unchanged_listing_writes_no_row(account):
    merge(account, [image("a"), image("b")])
    before = row_versions(account) if connection.vendor == "postgresql" else None
    result = merge(account, [image("b"), image("a")])
    assert not result.changed
    assert set(Image.objects.values_list("changed_version", flat=True)) == {1}
    if before is not None:
        assert row_versions(account) == before


def test_a_row_changed_by_another_writer_is_corrected_by_the_next_sync(account):
    # given: an operation failed an image the provider still lists as available
    merge(account, [image("a")])
    Image.objects.filter(account=account, external_id="a").update(status="FAILED", failure_reason="timed out")
    # when: the same listing again
    result = merge(account, [image("a")])
    # then: the provider's word wins again, as a change
    assert result.updated == 1
    row = Image.objects.get(account=account, external_id="a")
    assert (row.status, row.failure_reason, row.changed_version) == ("AVAILABLE", "", 2)


@postgresql_only
def test_a_stale_hash_with_the_same_content_is_refreshed_without_a_change(account):
    # given: rows without a hash (written before hashes, or by the API)
    merge(account, [image("a"), image("b")])
    Image.objects.filter(account=account).update(content_hash=None)
    # when
    result = merge(account, [image("a"), image("b")])
    # then: not a change, but the hashes are back, so the next sync compares nothing
    assert not result.changed
    assert Image.objects.filter(account=account, content_hash__isnull=True).count() == 0
    before = row_versions(account)
    assert not merge(account, [image("a"), image("b")]).changed
    assert row_versions(account) == before


@postgresql_only
def test_the_hash_is_cleared_only_when_content_changes_without_a_new_hash(account):
    merge(account, [image("a")])
    hashed = Image.objects.get(account=account, external_id="a").content_hash
    assert hashed is not None
    Image.objects.filter(account=account).update(missing_since=timezone.now())  # not content
    assert Image.objects.get(account=account).content_hash == hashed
    Image.objects.filter(account=account).update(name="a")  # the same content
    assert Image.objects.get(account=account).content_hash == hashed
    Image.objects.filter(account=account).update(name="renamed")
    assert Image.objects.get(account=account).content_hash is None


def test_rows_with_an_operation_in_flight_or_first_seen_meanwhile_are_not_marked_missing(account):
    from datetime import timedelta

    from images.models import Operation

    # given: three rows the next listing leaves out
    merge(account, [image("busy"), image("done"), image("gone")])
    rows = {r.external_id: r for r in Image.objects.filter(account=account)}
    for external_id, status in (("busy", "POLLING"), ("done", "SUCCEEDED")):
        Operation.objects.create(
            account=account,
            image=rows[external_id],
            kind="delete_image",
            status=status,
            deadline=timezone.now(),
        )
    Image.objects.create(account=account, external_id="new", first_seen=timezone.now() + timedelta(minutes=1))
    # when
    result = merge(account, [])
    # then
    missing = set(
        Image.objects.filter(account=account, missing_since__isnull=False).values_list(
            "external_id", flat=True
        )
    )
    assert (result.missing, missing) == (2, {"done", "gone"})


def test_an_incremental_listing_only_upserts(account):
    merge(account, [image("a"), image("b")])
    result = merge(account, [image("c")], mark_missing=False)
    assert (result.created, result.missing) == (1, 0)
    assert Image.objects.filter(account=account, missing_since__isnull=True).count() == 3


def test_text_that_copy_and_json_would_mangle_survives(account):
    awkward = 'tab\there, newline\nthere, back\\slash, "quotes", NUL\x00, ünïcode'
    odd_extra = {"nested": {2: "an int key", "list": ("a", None)}}
    merge(account, [image("odd\tid\\x", description=awkward, failure_reason="\r\n", extra=odd_extra)])
    row = Image.objects.get(account=account)
    assert row.extra == {"nested": {"2": "an int key", "list": ["a", None]}}
    # NUL cannot be stored in PostgreSQL text: it is dropped on every database alike
    assert (row.external_id, row.description) == ("odd\tid\\x", awkward.replace("\x00", ""))
    again = image("odd\tid\\x", description=awkward, failure_reason="\r\n", extra=odd_extra)
    assert not merge(account, [again]).changed


def test_an_unchanged_sync_costs_the_same_queries_whatever_the_catalog_size(api_user):
    counts = []
    for size in (3, 60):
        account = make_account(f"sized{size}", users=[api_user])
        driver = services.build_driver(account=account)
        with driver.store.locked():
            for i in range(size - 3):
                driver.store.put("images", {"id": f"more{i}", "name": f"more{i}", "owner_id": "mockuser"})
        sync.catalog_sync(account=account)

        def count(execute, *args, size=size):
            counts.append(size)
            return execute(*args)

        with connection.execute_wrapper(count):
            result = sync.catalog_sync(account=account)
        assert result.images.staged == size and not result.images.changed
    assert counts.count(3) == counts.count(60)


def test_sync_stages_the_same_values_as_a_single_image_store():
    from images.services import image_row_values
    from images.staging import encode_row

    one = image("a", description=None, creation_time="2013-01-01", extra={"z": "é", "y": None})
    assert image_stage_row(one)[0] == image_row_values(one)[0] == "a"
    assert encode_row(image_stage_row(one)[1]) == encode_row(image_row_values(one)[1])


def test_pages_of_any_size_are_staged_whole_and_the_connection_is_free_between_them(account):
    from images import staging

    big = [image(f"big-{i:04d}", description="x" * 200) for i in range(400)]  # several COPY chunks
    small = [image(f"small-{i}") for i in range(3)]  # less than one chunk
    assert sum(len(staging.encode_row(image_stage_row(i)[1])) for i in big) > 2 * staging.COPY_CHUNK_BYTES
    listed = [small, big, [], [image("tail")]]

    def pages():
        for number, page in enumerate(listed):
            if number:  # what the lease's heartbeat does between pages: use the connection
                if connection.vendor == "postgresql":  # no statement (a COPY) still running on it
                    assert connection.connection.info.transaction_status != TransactionStatus.ACTIVE
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
            yield page

    catalog = CatalogMerge(Image, IMAGE_COLUMNS)
    assert catalog.stage_pages(pages(), image_stage_row) == 3 + 400 + 1
    with transaction.atomic():
        now = timezone.now()
        result = catalog.merge(
            account_id=account.pk, now=now, listed_before=now, previous_success=None, version=1
        )
    expected = {i.id for page in listed for i in page}
    assert result.created == len(expected) == 404
    assert set(Image.objects.filter(account=account).values_list("external_id", flat=True)) == expected
    assert Image.objects.get(external_id="big-0399").description == "x" * 200
