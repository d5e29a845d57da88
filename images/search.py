"""The console's image search, indexed beside the catalog rather than in it.

Trigram indexes on the catalog table made every image a sync writes cost
about twice as much: of a 100,000-image first sync's 2.5 s, 0.7 s went to
them. The searched columns (id and name) are therefore copied into their own
table, ``ImageSearch``, once the sync has committed (a task on the sync
queue, and beat's sweep for whatever a lost message or an API write left
behind), and ``ImageSearchState`` records the catalog version each account's
entries are current for.

A search reads the copy for the accounts that are current and the catalog
rows themselves for the accounts that are behind, so its answer is always
the catalog's: only slower, for the seconds after a change, on the accounts
that changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.text import smart_split, unescape_string_literal

from images.models import Image, ImageSearch, ImageSearchState, ProviderAccount

# The searched columns, the same names on Image and ImageSearch.
FIELDS = ("external_id", "name")
# After a catch-up this large, the trigram indexes' pending entries are merged
# at once (in bulk, cheaper than entry by entry) and the table analyzed,
# instead of searches reading the entries one by one until autovacuum comes.
BULK_ABOVE = 1000
TRIGRAM_INDEXES = ("imagesearch_external_id_trgm", "imagesearch_name_trgm")


def search_terms(search_term: str) -> list[str]:
    """The admin's reading of a search box: words, or quoted phrases."""
    terms = []
    for bit in smart_split(search_term):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        terms.append(bit)
    return terms


def _matches(terms: Sequence[str]) -> Q:
    """Every term in the id or the name (case-insensitive), on either table."""
    return Q.create([Q.create([(f"{f}__icontains", term) for f in FIELDS], connector=Q.OR) for term in terms])


def lagging_account_ids() -> list[int]:
    """Accounts whose catalog changed after their search entries were written."""
    current = ImageSearchState.objects.filter(
        account_id=OuterRef("pk"), version__gte=OuterRef("catalog_version")
    )
    return list(ProviderAccount.objects.exclude(Exists(current)).values_list("pk", flat=True))


def filter_images(queryset: QuerySet[Image], search_term: str) -> QuerySet[Image]:
    """The images of ``queryset`` that match every term of ``search_term``."""
    terms = search_terms(search_term)
    if not terms:
        return queryset
    matches = _matches(terms)
    lagging = lagging_account_ids()
    found = ImageSearch.objects.filter(matches)
    if not lagging:
        return queryset.filter(pk__in=found.values("image_id"))
    # One branch per table, each on its own indexes (an OR of the two would
    # read the whole catalog).
    behind = Image.objects.filter(matches, account_id__in=lagging).values("pk")
    found = found.exclude(account_id__in=lagging).values("image_id").union(behind, all=True)
    return queryset.filter(pk__in=found)


def catch_up(account_id: int) -> int:
    """Bring one account's entries up to its catalog version; returns rows written.

    Rows changed after the last catch-up are upserted, and entries whose image
    is gone for good are dropped. Concurrent catch-ups of one account queue
    on its state row; the version is read before the rows, so every row it
    covers has been committed (writers stamp rows in the transaction that
    moves the version).
    """
    table, search, state = Image._meta.db_table, ImageSearch._meta.db_table, ImageSearchState._meta.db_table
    with transaction.atomic():
        if not ProviderAccount.objects.filter(pk=account_id).exists():
            return 0  # deleted since the task was sent
        try:
            with transaction.atomic():
                ImageSearchState.objects.get_or_create(account_id=account_id)
        except IntegrityError:
            return 0  # deleted meanwhile
        since = (
            ImageSearchState.objects.select_for_update()
            .values_list("version", flat=True)
            .get(account_id=account_id)
        )
        version = (
            ProviderAccount.objects.filter(pk=account_id).values_list("catalog_version", flat=True).first()
        )
        if version is None or version <= since:
            return 0
        differs = (
            f"({search}.external_id, {search}.name) IS DISTINCT FROM (excluded.external_id, excluded.name)"
            if connection.vendor == "postgresql"
            else f"{search}.external_id IS NOT excluded.external_id OR {search}.name IS NOT excluded.name"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {search} (image_id, account_id, external_id, name) "
                f"SELECT id, account_id, external_id, name FROM {table} "
                "WHERE account_id = %s AND changed_version > %s "
                f"ON CONFLICT (image_id) DO UPDATE SET external_id = excluded.external_id, "
                f"name = excluded.name WHERE {differs}",
                [account_id, since],
            )
            written = max(cursor.rowcount, 0)
            cursor.execute(
                f"DELETE FROM {search} WHERE account_id = %s AND NOT EXISTS "
                f"(SELECT 1 FROM {table} i WHERE i.id = {search}.image_id)",
                [account_id],
            )
            written += max(cursor.rowcount, 0)
            cursor.execute(f"UPDATE {state} SET version = %s WHERE account_id = %s", [version, account_id])
            if written > BULK_ABOVE and connection.vendor == "postgresql":
                _after_bulk(cursor)
    return written


def _after_bulk(cursor) -> None:
    """After many entries: merge the trigram indexes' pending entries now, in
    bulk, and give the planner the table's new size (only the table's owner
    may; otherwise autovacuum does both later, and searches are slower meanwhile)."""
    try:
        with transaction.atomic():
            cursor.execute(
                "SELECT gin_clean_pending_list(c.oid) FROM pg_class c WHERE c.relname = ANY(%s)",
                [list(TRIGRAM_INDEXES)],
            )
            cursor.execute(f"ANALYZE {ImageSearch._meta.db_table}")
    except DatabaseError:
        pass


def forget_account(account_id: int) -> None:
    """Drop an account's entries (its images are being deleted set-based,
    which the ORM's cascade does not see)."""
    ImageSearch.objects.filter(account_id=account_id).delete()  # one statement: nothing depends on it


def catch_up_lagging() -> int:
    """Catch up every account that is behind; returns how many were."""
    lagging = lagging_account_ids()
    for account_id in lagging:
        catch_up(account_id)
    return len(lagging)
