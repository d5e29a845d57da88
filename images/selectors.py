"""Reads of the cache, shaped for the API (HackSoft "selectors").

They return plain rows (``images.rows``) and never import the API layer.
A whole list is one query streamed from a server-side cursor; a page is one
keyset query on an index (plus one to find the marker), never OFFSET or COUNT.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from django.db.models import F, Q, QuerySet
from django.db.models.expressions import OrderBy

from images import services
from images.models import Image, Instance, ProviderAccount
from images.rows import IMAGE_ROW_FIELDS, INSTANCE_ROW_FIELDS, ImageRow, InstanceRow
from providers.base import Driver, Feature, HardwareProfile

IMAGE_FILTERS = ("id", "owner_id", "architecture", "state")
INSTANCE_FILTERS = ("id", "state", "realm_id", "owner_id")
# ?sort= names and the column each means, per collection.
IMAGE_SORTS = {"id": "external_id", "name": "name", "creation_time": "creation_time", "state": "state"}
INSTANCE_SORTS = {"id": "external_id", "name": "name", "creation_time": "launch_time", "state": "state"}
STREAM_CHUNK = 2000
Filters = tuple[tuple[str, str], ...]


class UnknownMarker(Exception):
    """The page marker names no image (or instance) of the account."""


@dataclass(frozen=True)
class Sort:
    column: str = "external_id"
    descending: bool = False

    def order(self) -> tuple[OrderBy, ...]:
        # NULLs last ascending, first descending: PostgreSQL's own order (so its
        # indexes serve it), spelled out so every database pages the same way.
        columns = ("external_id",) if self.column == "external_id" else (self.column, "external_id")
        if self.descending:
            return tuple(F(c).desc(nulls_first=True) for c in columns)
        return tuple(F(c).asc(nulls_last=True) for c in columns)


def _last_values(params: Mapping, names: Sequence[str]) -> Filters:
    # Present means filter, even when empty (Deltacloud: `owner_id=` matches nothing).
    return tuple((name, params.getlist(name)[-1]) for name in names if name in params)


def image_filters(params: Mapping, account: ProviderAccount) -> Filters:
    filters = _last_values(params, IMAGE_FILTERS)
    if ("owner_id", "self") in filters:
        identity = services.account_identity(account=account)
        filters = tuple((k, identity if (k, v) == ("owner_id", "self") else v) for k, v in filters)
    return filters


def image_q(filters: Filters) -> Q:
    """The filters as a condition on ``Image`` (the delta feed combines it too)."""
    q = Q()
    for name, value in filters:
        if name == "id":
            q &= Q(external_id=value)
        elif name == "state":
            # Raw provider states differ in case (EC2 `available`, mock
            # `AVAILABLE`); the normalized state matches too.
            q &= Q(state__iexact=value) | Q(status=value.upper())
        else:
            q &= Q(**{name: value})
    return q


def _visible_images(account: ProviderAccount) -> QuerySet:
    return Image.objects.filter(account=account, missing_since__isnull=True, deleted_at__isnull=True)


def _after(marker_value, marker_id: str, sort: Sort, nullable: bool) -> list[Q]:
    """The rows after the marker in ``Sort.order``, as conditions to read in turn.

    Each is a range an index on (account, column, external_id) scans in order
    and stops after one page: the redundant bound (``column >= value``) is what
    lets the database start the scan at the marker instead of filtering.
    NULLs (nullable columns only) come last ascending and first descending.
    """
    col, desc = sort.column, sort.descending
    beyond, bound = ("lt", "lte") if desc else ("gt", "gte")
    id_after = Q(**{f"external_id__{beyond}": marker_id})
    if col == "external_id":
        return [id_after]
    if marker_value is None:
        null_tail = Q(**{f"{col}__isnull": True}) & id_after
        return [null_tail, Q(**{f"{col}__isnull": False})] if desc else [null_tail]
    ranged = Q(**{f"{col}__{bound}": marker_value}) & (
        Q(**{f"{col}__{beyond}": marker_value}) | (Q(**{col: marker_value}) & id_after)
    )
    return [ranged, Q(**{f"{col}__isnull": True})] if nullable and not desc else [ranged]


def _page(
    visible: QuerySet, every: QuerySet, sort: Sort, limit: int, marker: str | None, row: type
) -> tuple[list, bool]:
    """One keyset page of ``visible`` and whether more follow; the marker is
    looked up among ``every`` row of the account (it may have vanished meanwhile)."""
    segments = [Q()]
    if marker is not None:
        found = list(every.filter(external_id=marker).values_list(sort.column, flat=True)[:1])
        if not found:
            raise UnknownMarker(marker)
        nullable = visible.model._meta.get_field(sort.column).null
        segments = _after(found[0], marker, sort, nullable)
    rows: list = []
    for segment in segments:
        query = visible.filter(segment).order_by(*sort.order()).values_list(*row._fields)
        rows += query[: limit + 1 - len(rows)]
        if len(rows) > limit:
            break
    return [row._make(r) for r in rows[:limit]], len(rows) > limit


def _stream(visible: QuerySet, sort: Sort, row: type) -> Iterator:
    """The whole list, read from a server-side cursor a chunk at a time."""
    rows = visible.order_by(*sort.order()).values_list(*row._fields)
    return (row._make(r) for r in rows.iterator(chunk_size=STREAM_CHUNK))


def image_rows(*, account: ProviderAccount, filters: Filters = (), sort: Sort = Sort()) -> Iterator[ImageRow]:
    return _stream(_visible_images(account).filter(image_q(filters)), sort, ImageRow)


def image_page(
    *, account: ProviderAccount, filters: Filters, sort: Sort, limit: int, marker: str | None
) -> tuple[list[ImageRow], bool]:
    every = Image.objects.filter(account=account)
    return _page(_visible_images(account).filter(image_q(filters)), every, sort, limit, marker, ImageRow)


def image_row(*, account: ProviderAccount, external_id: str) -> ImageRow | None:
    row = _visible_images(account).filter(external_id=external_id).values_list(*IMAGE_ROW_FIELDS).first()
    return ImageRow._make(row) if row else None


def instance_filters(params: Mapping) -> Filters:
    return _last_values(params, INSTANCE_FILTERS)


def _instance_q(filters: Filters) -> Q:
    fields = {"id": "external_id", "state": "state__iexact", "realm_id": "realm_id", "owner_id": "owner_id"}
    q = Q()
    for name, value in filters:
        q &= Q(**{fields[name]: value})
    return q


def _visible_instances(account: ProviderAccount) -> QuerySet:
    return Instance.objects.filter(account=account, missing_since__isnull=True)


def instance_rows(
    *, account: ProviderAccount, filters: Filters = (), sort: Sort = Sort()
) -> Iterator[InstanceRow]:
    return _stream(_visible_instances(account).filter(_instance_q(filters)), sort, InstanceRow)


def instance_page(
    *, account: ProviderAccount, filters: Filters, sort: Sort, limit: int, marker: str | None
) -> tuple[list[InstanceRow], bool]:
    every = Instance.objects.filter(account=account)
    return _page(
        _visible_instances(account).filter(_instance_q(filters)), every, sort, limit, marker, InstanceRow
    )


def instance_row(*, account: ProviderAccount, external_id: str) -> InstanceRow | None:
    row = (
        _visible_instances(account).filter(external_id=external_id).values_list(*INSTANCE_ROW_FIELDS).first()
    )
    return InstanceRow._make(row) if row else None


def entry_point_links(driver: type[Driver]) -> list[tuple[str, tuple[Feature, ...]]]:
    """The collections /api lists for a driver, alphabetically, with features."""
    rels = sorted({"drivers", "instance_states", *driver.collections})
    if not driver.instance_states:
        rels.remove("instance_states")
    return [(rel, driver.features.get(rel, ())) for rel in rels]


def hardware_profiles(driver: type[Driver]) -> Sequence[HardwareProfile]:
    """Hardware profiles are static per driver class."""
    return driver.hardware_profiles
