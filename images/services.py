"""Writes and provider calls: the only place that turns driver results into rows.

Views, tasks, admin actions and management commands call these functions;
they never talk to a driver themselves.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from images.catalog import CatalogMerge, MergeResult
from images.models import Image, Instance, Operation, ProviderAccount
from providers.base import Capabilities, Driver, ProviderImage, ProviderInstance, Realm
from providers.exceptions import AuthFailure, NotSupported, ProviderError
from providers.registry import DRIVERS, get_driver

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
# An account whose syncs failed this many times in a row is flagged.
FLAG_AFTER_FAILURES = 3
SYNC_LOCK_SECONDS = 15 * 60
# An image with a create or delete in flight is never marked missing: a
# provider without create ids (FGCP) does not list it until it is ready.
IMAGE_PROTECT_SQL = (
    "AND NOT EXISTS (SELECT 1 FROM images_operation o WHERE o.image_id = images_image.id "
    "AND o.status IN ('QUEUED', 'CALLING', 'POLLING'))"
)


class UnknownDriver(Exception):
    """A request named a driver the registry does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Driver '{name}' is not available")
        self.name = name


class NoAccount(Exception):
    """The user may use no enabled account for the requested driver/provider."""


# -- accounts ------------------------------------------------------------------


_drivers: dict[int, tuple[object, Driver]] = {}


def build_driver(*, account: ProviderAccount) -> Driver:
    """The account's driver, reused while the account row is unchanged.

    Drivers create their SDK clients lazily and are safe to share, so a
    process keeps one per account instead of decrypting credentials and
    building a client on every request.
    """
    cached = _drivers.get(account.pk)
    stamp = (account.updated_at, account.driver)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    driver = get_driver(account.driver)(
        provider=account.provider,
        params=account.params,
        credentials=account.credentials,
        state_dir=settings.DELTAWEB_MOCK_STORAGE / f"account-{account.pk}",
    )
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
    through = ProviderAccount.users.through._meta.db_table
    columns = ", ".join(f"a.{f.column}" for f in ProviderAccount._meta.concrete_fields)
    return (
        f"SELECT {columns} FROM {table} a WHERE a.enabled = %s",
        f" AND EXISTS (SELECT 1 FROM {through} t WHERE t.provideraccount_id = a.id AND t.user_id = %s)",
    )


def account_resolve(*, user, driver: str | None, provider: str | None) -> ProviderAccount:
    """The account a request means, among those the user may use.

    Every API read runs this: one hand-written query, because building the
    equivalent ORM query costs more than executing it.
    """
    if driver is not None and driver not in DRIVERS:
        raise UnknownDriver(driver)
    select, member = _account_sql()
    sql, params = select, [True]
    if not user.is_superuser:
        sql, params = sql + member, [*params, user.pk]
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


def _bump_version(account: ProviderAccount) -> None:
    ProviderAccount.objects.filter(pk=account.pk).update(catalog_version=F("catalog_version") + 1)
    account.refresh_from_db(fields=["catalog_version"])


# -- rows from driver objects ------------------------------------------------------


def _image_values(image: ProviderImage) -> tuple[str, tuple]:
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


def _instance_values(inst: ProviderInstance) -> tuple[str, tuple]:
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


def _store(model, account: ProviderAccount, external_id: str, fields: dict, resurrect: bool):
    """Insert or update one row; the catalog version moves only on a real change."""
    now = timezone.now()
    row = model.objects.filter(account=account, external_id=external_id).first()
    if row is None:
        try:
            with transaction.atomic():
                row = model.objects.create(
                    account=account, external_id=external_id, first_seen=now, last_seen=now, **fields
                )
        except IntegrityError:  # inserted concurrently (a sync, another lookup)
            return _store(model, account, external_id, fields, resurrect)
    else:
        changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
        if row.missing_since is not None:
            changed["missing_since"] = None
        if resurrect and getattr(row, "deleted_at", None) is not None:
            changed["deleted_at"] = None
        if not changed:
            return row
        changed["last_seen"] = now
        for key, value in changed.items():
            setattr(row, key, value)
        row.save(update_fields=list(changed))
    _bump_version(account)
    return row


def image_store(*, account: ProviderAccount, image: ProviderImage, resurrect: bool = False) -> Image:
    """Insert or refresh one image row from the provider's description.

    ``resurrect`` clears a tombstone (the image was just created again);
    otherwise a tombstoned row stays hidden whatever the provider says.
    """
    external_id, values = _image_values(image)
    return _store(Image, account, external_id, dict(zip(IMAGE_COLUMNS, values, strict=True)), resurrect)


def instance_store(*, account: ProviderAccount, instance: ProviderInstance) -> Instance:
    external_id, values = _instance_values(instance)
    return _store(Instance, account, external_id, dict(zip(INSTANCE_COLUMNS, values, strict=True)), False)


# -- lookups of ids the cache does not know ------------------------------------------


def _negative_key(kind: str, account: ProviderAccount, external_id: str) -> str:
    return f"dw:miss:{kind}:{account.pk}:{external_id}"


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
    image = build_driver(account=account).get_image(external_id)
    if image is None:
        cache.set(key, True, settings.DELTAWEB_NEGATIVE_LOOKUP_SECONDS)
        return None
    return image_store(account=account, image=image)


def instance_lookup(*, account: ProviderAccount, external_id: str) -> Instance | None:
    key = _negative_key("instance", account, external_id)
    if cache.get(key):
        return None
    instance = build_driver(account=account).get_instance(external_id)
    if instance is None:
        cache.set(key, True, settings.DELTAWEB_NEGATIVE_LOOKUP_SECONDS)
        return None
    return instance_store(account=account, instance=instance)


# -- catalog sync ------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    images: MergeResult
    instances: MergeResult | None
    duration: float


def _acquire_sync_lock(account: ProviderAccount) -> str | None:
    """A lock row-update that works across processes on SQLite and PostgreSQL."""
    token = uuid.uuid4().hex
    now = timezone.now()
    got = ProviderAccount.objects.filter(
        Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now), pk=account.pk
    ).update(sync_lock_until=now + timedelta(seconds=SYNC_LOCK_SECONDS), sync_lock_token=token)
    return token if got else None


def _release_sync_lock(account: ProviderAccount, token: str) -> None:
    ProviderAccount.objects.filter(pk=account.pk, sync_lock_token=token).update(
        sync_lock_until=None, sync_lock_token=""
    )


class SyncInProgress(Exception):
    """Another process is syncing this account; the request is merged into it."""


def catalog_sync(*, account: ProviderAccount) -> SyncResult:
    """List the account's images and instances and merge them into the cache.

    One sync per account at a time; a provider error anywhere in the listing
    leaves the cache as it was and is recorded on the account.
    """
    token = _acquire_sync_lock(account)
    if token is None:
        raise SyncInProgress(f"A sync of {account.name} is already running")
    account.refresh_from_db()
    started = timezone.now()
    t0 = time.monotonic()
    ProviderAccount.objects.filter(pk=account.pk).update(last_sync_started_at=started, sync_requested_at=None)
    previous_success = account.last_sync_succeeded_at
    try:
        driver = build_driver(account=account)
        identity = driver.identity()
        image_merge = CatalogMerge(Image, IMAGE_COLUMNS)
        image_merge.stage_pages(driver.iter_image_pages(), _image_values)
        instance_merge: CatalogMerge | None = CatalogMerge(Instance, INSTANCE_COLUMNS)
        try:
            instance_merge.stage_pages(driver.iter_instance_pages(), _instance_values)
        except NotSupported:
            instance_merge = None
        now = timezone.now()
        images = image_merge.merge(
            account_id=account.pk,
            now=now,
            listed_before=started,
            previous_success=previous_success,
            protect_sql=IMAGE_PROTECT_SQL,
            purge_tombstones=True,
            detach=(Operation._meta.db_table, "image_id"),
        )
        instances = None
        if instance_merge is not None:
            instances = instance_merge.merge(
                account_id=account.pk,
                now=now,
                listed_before=started,
                previous_success=previous_success,
            )
    except ProviderError as exc:
        _record_sync_failure(account, exc, time.monotonic() - t0)
        raise
    finally:
        _release_sync_lock(account, token)
    duration = time.monotonic() - t0
    changed = images.changed or (instances is not None and instances.changed)
    ProviderAccount.objects.filter(pk=account.pk).update(
        owner_identity=identity,
        last_sync_succeeded_at=now,
        last_sync_duration=duration,
        last_sync_error="",
        consecutive_failures=0,
        needs_attention=False,
        attention_reason="",
        next_sync_at=now + timedelta(seconds=_sync_interval(account, now)),
        catalog_version=F("catalog_version") + (1 if changed or identity != account.owner_identity else 0),
    )
    account.refresh_from_db()
    logger.info(
        "synced %s: %d images (%d new, %d changed, %d missing) in %.2fs",
        account.name,
        images.staged,
        images.created,
        images.updated,
        images.missing,
        duration,
    )
    return SyncResult(images=images, instances=instances, duration=duration)


def account_flag(*, account: ProviderAccount, reason: str) -> None:
    """Mark the account for operators (rejected credentials, repeated failures)."""
    ProviderAccount.objects.filter(pk=account.pk).update(needs_attention=True, attention_reason=reason)
    logger.warning("account %s needs attention: %s", account.name, reason)


def _sync_interval(account: ProviderAccount, now) -> int:
    """Faster for a while after a create or delete, so the catalog catches up."""
    if account.fast_sync_until and account.fast_sync_until > now:
        return min(account.sync_interval, settings.DELTAWEB_FAST_SYNC_INTERVAL)
    return account.sync_interval


def _record_sync_failure(account: ProviderAccount, exc: ProviderError, duration: float) -> None:
    now = timezone.now()
    failures = account.consecutive_failures + 1
    ProviderAccount.objects.filter(pk=account.pk).update(
        last_sync_failed_at=now,
        last_sync_error=f"{type(exc).__name__}: {exc}",
        last_sync_duration=duration,
        consecutive_failures=F("consecutive_failures") + 1,
        needs_attention=isinstance(exc, AuthFailure) or failures >= FLAG_AFTER_FAILURES,
        attention_reason=f"Sync failed {failures} time(s) in a row: {type(exc).__name__}: {exc}",
        # Back off: a failing account is retried later than a healthy one.
        next_sync_at=now + timedelta(seconds=min(account.sync_interval * failures, 3600)),
    )
    account.refresh_from_db()
    logger.warning("sync of %s failed: %s: %s", account.name, type(exc).__name__, exc)


def sync_request(*, account_id: int, within_seconds: int = 60) -> bool:
    """Claim the right to enqueue a sync; False when one is queued or running.

    Two requests close together (beat and an operator, or two beats) enqueue
    one task: the second is merged into the first.
    """
    now = timezone.now()
    return bool(
        ProviderAccount.objects.filter(pk=account_id)
        .filter(Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now))
        .filter(
            Q(sync_requested_at__isnull=True)
            | Q(sync_requested_at__lt=now - timedelta(seconds=within_seconds))
        )
        .update(sync_requested_at=now)
    )


def catalog_sync_enqueue(*, account_id: int, within_seconds: int = 60) -> bool:
    """Queue a sync for the worker unless one is queued or running (then it merges)."""
    if not sync_request(account_id=account_id, within_seconds=within_seconds):
        return False
    from images.tasks import catalog_sync_task

    transaction.on_commit(lambda: catalog_sync_task.delay(account_id), robust=True)
    return True
