"""Catalog sync: what a provider lists becomes the account's cached rows.

A full listing is staged page by page and merged in one transaction
(``images.merge``); it is also the only way to notice images that vanished.
Drivers that can list what changed since a provider-side time
(``capabilities.incremental_listing``) are asked only for that between full
listings. One sync per account runs at a time (a lock row with an expiry);
every run is recorded as a ``SyncRun`` for operators.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from images.merge import CatalogMerge, MergeResult
from images.models import Image, Instance, Operation, ProviderAccount, SyncRun
from images.queue import enqueue
from images.services import (
    IMAGE_COLUMNS,
    INSTANCE_COLUMNS,
    build_driver,
    image_row_values,
    instance_row_values,
)
from providers.base import Driver, ProviderImage
from providers.exceptions import AuthFailure, NotSupported, ProviderError

logger = logging.getLogger(__name__)

# An account whose syncs failed this many times in a row is flagged.
FLAG_AFTER_FAILURES = 3
SYNC_LOCK_SECONDS = 15 * 60
# An image with a create or delete in flight is never marked missing: a
# provider without create ids (FGCP) does not list it until it is ready.
IMAGE_PROTECT_SQL = (
    "AND NOT EXISTS (SELECT 1 FROM images_operation o WHERE o.image_id = images_image.id "
    "AND o.status IN ('QUEUED', 'CALLING', 'POLLING'))"
)


@dataclass(frozen=True)
class SyncResult:
    images: MergeResult
    instances: MergeResult | None
    duration: float
    incremental: bool = False


class SyncInProgress(Exception):
    """Another process is syncing this account; the request is merged into it."""


class _Pages:
    """Counts a driver's pages and remembers the newest provider time seen."""

    def __init__(self, pages: Iterable[Sequence[ProviderImage]], cursor: str) -> None:
        self.pages = pages
        self.count = 0
        self.cursor = cursor

    def __iter__(self) -> Iterator[Sequence[ProviderImage]]:
        for page in self.pages:
            self.count += 1
            for image in page:
                if image.updated_at and image.updated_at > self.cursor:
                    self.cursor = image.updated_at
            yield page


# -- the lock --------------------------------------------------------------------------


def _acquire_lock(account: ProviderAccount) -> str | None:
    """A lock row-update that works across processes on SQLite and PostgreSQL."""
    token = uuid.uuid4().hex
    now = timezone.now()
    got = ProviderAccount.objects.filter(
        Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now), pk=account.pk
    ).update(sync_lock_until=now + timedelta(seconds=SYNC_LOCK_SECONDS), sync_lock_token=token)
    return token if got else None


def _release_lock(account: ProviderAccount, token: str) -> None:
    ProviderAccount.objects.filter(pk=account.pk, sync_lock_token=token).update(
        sync_lock_until=None, sync_lock_token=""
    )


# -- syncing ---------------------------------------------------------------------------


def _wants_incremental(account: ProviderAccount, driver: Driver, now: datetime, full: bool) -> bool:
    if full or not driver.capabilities.incremental_listing or not account.sync_cursor:
        return False
    last_full = account.last_full_sync_at
    return last_full is not None and now - last_full < timedelta(seconds=account.full_sync_interval)


def catalog_sync(*, account: ProviderAccount, full: bool = False) -> SyncResult:
    """List the account's images and instances and merge them into the cache.

    One sync per account at a time; a provider error anywhere in the listing
    leaves the cache as it was and is recorded on the account and its run.
    ``full`` forces a full listing where an incremental one would do.
    """
    token = _acquire_lock(account)
    if token is None:
        raise SyncInProgress(f"A sync of {account.name} is already running")
    account.refresh_from_db()
    started = timezone.now()
    t0 = time.monotonic()
    ProviderAccount.objects.filter(pk=account.pk).update(last_sync_started_at=started, sync_requested_at=None)
    run = SyncRun.objects.create(account=account, started_at=started)
    previous_success = account.last_sync_succeeded_at
    try:
        driver = build_driver(account=account)
        incremental = _wants_incremental(account, driver, started, full)
        if incremental:
            run.kind = SyncRun.Kind.INCREMENTAL
        identity = driver.identity()
        pages = _Pages(
            driver.iter_image_changes(account.sync_cursor) if incremental else driver.iter_image_pages(),
            account.sync_cursor if incremental else "",
        )
        image_merge = CatalogMerge(Image, IMAGE_COLUMNS)
        image_merge.stage_pages(pages, image_row_values)
        instance_merge: CatalogMerge | None = CatalogMerge(Instance, INSTANCE_COLUMNS)
        try:
            instance_merge.stage_pages(driver.iter_instance_pages(), instance_row_values)
        except NotSupported:
            instance_merge = None
        now = timezone.now()
        with transaction.atomic():
            images, instances, version = _merge(
                account, image_merge, instance_merge, now, started, previous_success, incremental
            )
            purged = 0 if incremental else _purge_vanished(account, now)
    except ProviderError as exc:
        _record_failure(account, run, exc, time.monotonic() - t0)
        raise
    finally:
        _release_lock(account, token)
    duration = time.monotonic() - t0
    fields = {
        "owner_identity": identity,
        "last_sync_succeeded_at": now,
        "last_sync_duration": duration,
        "last_sync_error": "",
        "consecutive_failures": 0,
        "needs_attention": False,
        "attention_reason": "",
        "next_sync_at": now + timedelta(seconds=_interval(account, now)),
        "sync_cursor": pages.cursor,
    }
    if not incremental:
        fields["last_full_sync_at"] = now
    if identity != account.owner_identity and version == account.catalog_version:
        fields["catalog_version"] = F("catalog_version") + 1  # owner_id=self now means another owner
    ProviderAccount.objects.filter(pk=account.pk).update(**fields)
    SyncRun.objects.filter(pk=run.pk).update(
        kind=run.kind,
        outcome=SyncRun.Outcome.SUCCEEDED,
        finished_at=timezone.now(),
        duration=duration,
        pages=pages.count,
        images_listed=images.staged,
        images_added=images.created,
        images_changed=images.updated,
        images_vanished=images.missing,
        instances_listed=instances.staged if instances is not None else None,
    )
    account.refresh_from_db()
    logger.info(
        "synced %s (%s): %d images (%d new, %d changed, %d missing, %d purged) in %.2fs",
        account.name,
        run.kind,
        images.staged,
        images.created,
        images.updated,
        images.missing,
        purged,
        duration,
    )
    return SyncResult(images=images, instances=instances, duration=duration, incremental=incremental)


def _merge(
    account: ProviderAccount,
    image_merge: CatalogMerge,
    instance_merge: CatalogMerge | None,
    now: datetime,
    started: datetime,
    previous_success: datetime | None,
    incremental: bool,
) -> tuple[MergeResult, MergeResult | None, int]:
    """Both merges under the account's row lock, writing one new catalog version."""
    current = (
        ProviderAccount.objects.select_for_update()
        .filter(pk=account.pk)
        .values_list("catalog_version", flat=True)
    ).get()
    version = current + 1
    common = {"account_id": account.pk, "now": now, "listed_before": started, "version": version}
    images = image_merge.merge(
        **common,
        previous_success=previous_success,
        mark_missing=not incremental,
        protect_sql=IMAGE_PROTECT_SQL,
    )
    instances = None
    if instance_merge is not None:
        instances = instance_merge.merge(**common, previous_success=previous_success)
    if images.changed or (instances is not None and instances.changed):
        ProviderAccount.objects.filter(pk=account.pk).update(catalog_version=version)
        return images, instances, version
    return images, instances, current


def _purge_vanished(account: ProviderAccount, now: datetime) -> int:
    """Forget rows that vanished longer ago than the retention; the delta feed
    can no longer report them, so its floor moves past their versions."""
    cutoff = connection.ops.adapt_datetimefield_value(
        now - timedelta(seconds=settings.DELTAWEB_VANISHED_RETENTION_SECONDS)
    )
    doomed = f"SELECT id FROM {Image._meta.db_table} WHERE account_id = %s AND missing_since < %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MAX(changed_version) FROM {Image._meta.db_table} WHERE id IN ({doomed})",
            [account.pk, cutoff],
        )
        floor = cursor.fetchone()[0]
        if floor is None:
            return 0
        cursor.execute(
            f"UPDATE {Operation._meta.db_table} SET image_id = NULL WHERE image_id IN ({doomed})",
            [account.pk, cutoff],
        )
        cursor.execute(f"DELETE FROM {Image._meta.db_table} WHERE id IN ({doomed})", [account.pk, cutoff])
        purged = max(cursor.rowcount, 0)
    ProviderAccount.objects.filter(pk=account.pk, feed_floor__lt=floor).update(feed_floor=floor)
    return purged


def _interval(account: ProviderAccount, now: datetime) -> int:
    """Faster for a while after a create or delete, so the catalog catches up."""
    if account.fast_sync_until and account.fast_sync_until > now:
        return min(account.sync_interval, settings.DELTAWEB_FAST_SYNC_INTERVAL)
    return account.sync_interval


def _record_failure(account: ProviderAccount, run: SyncRun, exc: ProviderError, duration: float) -> None:
    now = timezone.now()
    failures = account.consecutive_failures + 1
    error = f"{type(exc).__name__}: {exc}"
    ProviderAccount.objects.filter(pk=account.pk).update(
        last_sync_failed_at=now,
        last_sync_error=error,
        last_sync_duration=duration,
        consecutive_failures=F("consecutive_failures") + 1,
        needs_attention=isinstance(exc, AuthFailure) or failures >= FLAG_AFTER_FAILURES,
        attention_reason=f"Sync failed {failures} time(s) in a row: {error}",
        # Back off: a failing account is retried later than a healthy one, and
        # never sooner than a throttling provider asked (Retry-After).
        next_sync_at=now
        + timedelta(seconds=max(min(account.sync_interval * failures, 3600), exc.retry_after or 0)),
    )
    SyncRun.objects.filter(pk=run.pk).update(
        kind=run.kind, outcome=SyncRun.Outcome.FAILED, finished_at=now, duration=duration, error=error
    )
    account.refresh_from_db()
    logger.warning("sync of %s failed: %s", account.name, error)


# -- asking for a sync -------------------------------------------------------------------


def sync_request(*, account_id: int, within_seconds: int = 60) -> bool:
    """Claim the right to enqueue a sync; False when one is queued or running.

    Two requests close together (beat and an operator, or two beats) enqueue
    one task: the second is merged into the first.
    """
    now = timezone.now()
    return bool(
        ProviderAccount.objects.filter(pk=account_id, enabled=True)
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
    enqueue("catalog_sync_task", account_id)
    return True


def sync_due_accounts() -> int:
    """Beat's tick: queue a sync of every enabled account whose time has come."""
    now = timezone.now()
    due = ProviderAccount.objects.filter(enabled=True).filter(
        Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now)
    )
    return sum(catalog_sync_enqueue(account_id=pk) for pk in due.values_list("pk", flat=True))
