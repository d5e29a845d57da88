"""Reads of the cache, shaped for the API (HackSoft "selectors").

List queries are one ``values_list`` each, whatever the catalog size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db.models import Q

from images import services
from images.api.serializers import (
    IMAGE_ROW_FIELDS,
    INSTANCE_ROW_FIELDS,
    ImageRow,
    InstanceRow,
)
from images.models import Image, Instance, ProviderAccount
from providers.base import Driver, Feature, HardwareProfile

IMAGE_FILTERS = ("id", "owner_id", "architecture", "state")
INSTANCE_FILTERS = ("id", "state", "realm_id", "owner_id")
Filters = tuple[tuple[str, str], ...]


def _last_values(params: Mapping, names: Sequence[str]) -> Filters:
    # Present means filter, even when empty (Deltacloud: `owner_id=` matches nothing).
    return tuple((name, params.getlist(name)[-1]) for name in names if name in params)


def image_filters(params: Mapping, account: ProviderAccount) -> Filters:
    filters = _last_values(params, IMAGE_FILTERS)
    if ("owner_id", "self") in filters:
        identity = services.account_identity(account=account)
        filters = tuple((k, identity if (k, v) == ("owner_id", "self") else v) for k, v in filters)
    return filters


def _image_q(filters: Filters) -> Q:
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


def _visible_images(account: ProviderAccount):
    return Image.objects.filter(account=account, missing_since__isnull=True, deleted_at__isnull=True)


def image_rows(*, account: ProviderAccount, filters: Filters = ()) -> list[ImageRow]:
    rows = (
        _visible_images(account)
        .filter(_image_q(filters))
        .order_by("external_id")
        .values_list(*IMAGE_ROW_FIELDS)
    )
    return [ImageRow._make(r) for r in rows]


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


def instance_rows(*, account: ProviderAccount, filters: Filters = ()) -> list[InstanceRow]:
    rows = (
        Instance.objects.filter(account=account, missing_since__isnull=True)
        .filter(_instance_q(filters))
        .order_by("external_id")
        .values_list(*INSTANCE_ROW_FIELDS)
    )
    return [InstanceRow._make(r) for r in rows]


def instance_row(*, account: ProviderAccount, external_id: str) -> InstanceRow | None:
    row = (
        Instance.objects.filter(account=account, missing_since__isnull=True, external_id=external_id)
        .values_list(*INSTANCE_ROW_FIELDS)
        .first()
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
