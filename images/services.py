"""Writes and provider calls: the only place that turns driver results into rows.

Views, tasks, admin actions and management commands call these functions;
they never talk to a driver themselves.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from images.models import Image, Instance, ProviderAccount
from providers import registry
from providers.base import Capabilities, Driver, ProviderImage, ProviderInstance, Realm
from providers.exceptions import InvalidParameter, NotSupported, ProviderError

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = (
    "name",
    "description",
    "owner_id",
    "architecture",
    "state",
    "status",
    "root_type",
    "creation_time",
    "hardware_profiles",
    "failure_reason",
    "extra",
)
INSTANCE_COLUMNS = (
    "name",
    "state",
    "owner_id",
    "image_id",
    "realm_id",
    "hardware_profile_id",
    "hardware_profile_overrides",
    "actions",
    "create_image_refusal",
    "root_type",
    "public_addresses",
    "private_addresses",
    "storage_volumes",
    "keyname",
    "launch_time",
    "network_interfaces",
    "extra",
)


class UnknownDriver(Exception):
    """A request named a driver the registry does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Driver '{name}' is not available")
        self.name = name


class NoAccount(Exception):
    """The user may use no enabled account for the requested driver/provider."""


class AccountMisconfigured(ProviderError):
    """The account's stored parameters or credentials cannot build its driver (HTTP 502).

    The API user's request is fine; the account needs an operator.
    """


# -- accounts ------------------------------------------------------------------


_drivers: dict[int, tuple[object, Driver]] = {}


def build_driver(*, account: ProviderAccount) -> Driver:
    """The account's driver, reused while the account row is unchanged.

    Drivers create their SDK clients lazily and are safe to share, so a
    process keeps one per account instead of decrypting credentials and
    building a client on every request.
    """
    cached = _drivers.get(account.pk)
    # Everything the driver is built from, not only updated_at: rows can be
    # changed by a queryset update, which leaves updated_at alone.
    stamp = (account.driver, account.provider, account.credentials_encrypted, repr(account.params))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        driver = registry.create(
            account.driver,
            provider=account.provider,
            params=account.params,
            credentials=account.credentials,
        )
    except InvalidParameter as exc:
        reason = f"Account '{account.name}' is misconfigured: {exc}"
        account_flag(account=account, reason=reason)
        raise AccountMisconfigured(reason) from None
    _drivers[account.pk] = (stamp, driver)
    return driver


def capabilities(*, account: ProviderAccount) -> Capabilities:
    return build_driver(account=account).capabilities


def account_identity(*, account: ProviderAccount) -> str:
    """What ``owner_id=self`` means; learned from the provider once, kept on the row."""
    if not account.owner_identity:
        identity = build_driver(account=account).identity()
        ProviderAccount.objects.filter(pk=account.pk).update(owner_identity=identity)
        account.owner_identity = identity
    return account.owner_identity


def realm_list(*, account: ProviderAccount) -> Sequence[Realm]:
    return build_driver(account=account).realms()


def realm_get(*, account: ProviderAccount, realm_id: str) -> Realm:
    return build_driver(account=account).get_realm(realm_id)


@functools.cache
def _account_sql() -> tuple[str, str]:
    table = ProviderAccount._meta.db_table
    users = ProviderAccount.users.through._meta.db_table
    groups = ProviderAccount.groups.through._meta.db_table
    user_groups = ProviderAccount.users.field.related_model.groups.through._meta.db_table
    columns = ", ".join(f"a.{f.column}" for f in ProviderAccount._meta.concrete_fields)
    return (
        f"SELECT {columns} FROM {table} a WHERE a.enabled = %s",
        f" AND (EXISTS (SELECT 1 FROM {users} t WHERE t.provideraccount_id = a.id AND t.user_id = %s)"
        f" OR EXISTS (SELECT 1 FROM {groups} g JOIN {user_groups} ug ON ug.group_id = g.group_id"
        f" WHERE g.provideraccount_id = a.id AND ug.user_id = %s))",
    )


def account_resolve(*, user, driver: str | None, provider: str | None) -> ProviderAccount:
    """The account a request means, among those the user may use.

    Every API read runs this: one hand-written query, because building the
    equivalent ORM query costs more than executing it.
    """
    if driver is not None and driver not in registry.DRIVERS:
        raise UnknownDriver(driver)
    select, member = _account_sql()
    sql, params = select, [True]
    if not user.is_superuser:
        sql, params = sql + member, [*params, user.pk, user.pk]
    if driver is not None:
        sql, params = sql + " AND a.driver = %s", [*params, driver]
    if provider is not None:
        sql, params = sql + " AND a.provider = %s", [*params, provider]
    found = list(ProviderAccount.objects.raw(sql + " ORDER BY a.is_default DESC, a.id LIMIT 1", params))
    account = found[0] if found else None
    if account is None:
        wanted = " ".join(
            part for part in (driver and f"driver '{driver}'", provider and f"provider '{provider}'") if part
        )
        raise NoAccount(f"No provider account{' for ' + wanted if wanted else ''} is available to this user")
    return account


def catalog_touch(*, account: ProviderAccount, image_ids: Iterable[int] = ()) -> int:
    """Record a change of the account's catalog; returns the new version.

    Rendered documents are keyed by the version, and the images that changed
    record it (``changed_version``, the delta feed), in the caller's transaction.
    Call it before writing the rows: it holds the account's row until the
    transaction ends, so writers commit their versions in order, and every
    writer locks the account before image rows, as sync's merge does (the
    other order deadlocks against a sync).
    """
    with transaction.atomic():
        ProviderAccount.objects.filter(pk=account.pk).update(catalog_version=F("catalog_version") + 1)
        version = (
            ProviderAccount.objects.filter(pk=account.pk).values_list("catalog_version", flat=True).get()
        )
        ids = [i for i in image_ids if i is not None]
        if ids:
            Image.objects.filter(pk__in=ids).update(changed_version=version)
    account.catalog_version = version
    return version


# -- rows from driver objects ------------------------------------------------------


def image_row_values(image: ProviderImage) -> tuple[str, tuple]:
    return image.id, (
        image.name,
        image.description,
        image.owner_id,
        image.architecture,
        image.raw_state,
        image.state.value,
        image.root_type.value,
        image.creation_time,
        list(image.hardware_profiles) if image.hardware_profiles is not None else None,
        image.failure_reason,
        dict(image.extra),
    )


def image_stage_row(image: ProviderImage) -> tuple[str, tuple]:
    """``image_row_values`` without the copies, for sync's merge, whose JSON
    encoder takes enums, tuples and mappings as they are (100,000 rows a sync)."""
    return image.id, (
        image.name,
        image.description,
        image.owner_id,
        image.architecture,
        image.raw_state,
        image.state,
        image.root_type,
        image.creation_time,
        image.hardware_profiles,
        image.failure_reason,
        image.extra,
    )


def instance_row_values(inst: ProviderInstance) -> tuple[str, tuple]:
    def addresses(items):
        return [{"address": a.address, "type": a.type} for a in items]

    return inst.id, (
        inst.name,
        inst.state,
        inst.owner_id,
        inst.image_id,
        inst.realm_id,
        inst.hardware_profile_id,
        [list(p) for p in inst.hardware_profile_overrides],
        list(inst.actions),
        inst.create_image_refusal,
        inst.root_type.value,
        addresses(inst.public_addresses),
        addresses(inst.private_addresses),
        list(inst.storage_volumes),
        inst.keyname,
        inst.launch_time,
        list(inst.network_interfaces) if inst.network_interfaces is not None else None,
        dict(inst.extra),
    )


def _changes(row, fields: dict, resurrect: bool) -> dict:
    changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
    if row.missing_since is not None:
        changed["missing_since"] = None
    if resurrect and getattr(row, "deleted_at", None) is not None:
        changed["deleted_at"] = None
    return changed


def _store(model, account: ProviderAccount, external_id: str, fields: dict, resurrect: bool):
    """Insert or update one row; the catalog version moves only on a real change,
    in the row's transaction (the delta feed)."""
    row = model.objects.filter(account=account, external_id=external_id).first()
    if row is not None and not _changes(row, fields, resurrect):
        return row
    versioned = model is Image
    with transaction.atomic():
        version = catalog_touch(account=account)  # the account first, then the row
        now = timezone.now()
        stamp = {"changed_version": version} if versioned else {}
        if row is None:
            try:
                with transaction.atomic():
                    return model.objects.create(
                        account=account,
                        external_id=external_id,
                        first_seen=now,
                        last_seen=now,
                        **fields,
                        **stamp,
                    )
            except IntegrityError:  # inserted meanwhile (a sync, another lookup)
                row = model.objects.get(account=account, external_id=external_id)
        changed = _changes(row, fields, resurrect)
        if changed:
            changed.update(last_seen=now, **stamp)
            for key, value in changed.items():
                setattr(row, key, value)
            row.save(update_fields=list(changed))
    return row


def image_store(*, account: ProviderAccount, image: ProviderImage, resurrect: bool = False) -> Image:
    """Insert or refresh one image row from the provider's description.

    ``resurrect`` clears a tombstone (the image was just created again);
    otherwise a tombstoned row stays hidden whatever the provider says.
    """
    external_id, values = image_row_values(image)
    return _store(Image, account, external_id, dict(zip(IMAGE_COLUMNS, values, strict=True)), resurrect)


def instance_store(*, account: ProviderAccount, instance: ProviderInstance) -> Instance:
    external_id, values = instance_row_values(instance)
    return _store(Instance, account, external_id, dict(zip(INSTANCE_COLUMNS, values, strict=True)), False)


# -- lookups of ids the cache does not know ------------------------------------------


def _negative_key(kind: str, account: ProviderAccount, external_id: str) -> str:
    # Ids are provider text (spaces, up to 255 bytes): a digest keeps the key valid on every cache backend.
    digest = hashlib.blake2b(external_id.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"dw:miss:{kind}:{account.pk}:{digest}"


def image_lookup(*, account: ProviderAccount, external_id: str) -> Image | None:
    """Ask the provider once for an id the cache does not list.

    A miss is remembered briefly so repeated requests for an unknown id do
    not each cost a provider call.
    """
    key = _negative_key("image", account, external_id)
    if cache.get(key):
        return None
    if Image.objects.filter(account=account, external_id=external_id, deleted_at__isnull=False).exists():
        return None  # deleted through the API; the provider may lag behind
    try:
        image = build_driver(account=account).get_image(external_id)
    except NotSupported:
        image = None  # the driver cannot look one image up: the cache is all we know
    if image is None:
        cache.set(key, True, settings.DELTAWEB_NEGATIVE_LOOKUP_SECONDS)
        return None
    return image_store(account=account, image=image)


def instance_lookup(*, account: ProviderAccount, external_id: str) -> Instance | None:
    key = _negative_key("instance", account, external_id)
    if cache.get(key):
        return None
    try:
        instance = build_driver(account=account).get_instance(external_id)
    except NotSupported:
        instance = None
    if instance is None:
        cache.set(key, True, settings.DELTAWEB_NEGATIVE_LOOKUP_SECONDS)
        return None
    return instance_store(account=account, instance=instance)


def account_flag(*, account: ProviderAccount, reason: str) -> None:
    """Mark the account for operators (rejected credentials, repeated failures)."""
    ProviderAccount.objects.filter(pk=account.pk).update(needs_attention=True, attention_reason=reason)
    logger.warning("account %s needs attention: %s", account.name, reason)
