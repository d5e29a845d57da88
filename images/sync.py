"""Catalog sync: what a provider lists becomes the account's cached rows.

A full listing is staged page by page and merged in one transaction
(``images.merge``); it is also the only way to notice images that vanished.
Drivers that can list what changed since a provider-side time
(``capabilities.incremental_listing``) are asked only for that between full
listings. One sync per account runs at a time, under a lease renewed while
it runs (``SyncLease``); every run is recorded as a ``SyncRun`` for operators.
"""

from __future__ import annotations

import logging
import os
import socket
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
    image_stage_row,
    instance_row_values,
)
from providers.base import Driver, ProviderImage
from providers.exceptions import AuthFailure, NotSupported, ProviderError

logger = logging.getLogger(__name__)

# An account whose syncs failed this many times in a row is flagged.
FLAG_AFTER_FAILURES = 3
# A sync renews its lease this many times per lease, so a provider page (or
# the merge) may take most of a lease without the sync being taken over.
RENEWALS_PER_LEASE = 6
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
    """Another process holds the account's sync lease; the request is merged into its sync."""


class SyncLeaseLost(SyncInProgress):
    """This sync stopped renewing its lease in time and another sync took it
    over; this one stops without writing anything."""


class SyncLease:
    """The right to sync one account: a lease on its row, renewed while the sync runs.

    The holder renews it between provider pages and at the merge
    (``heartbeat``). A sync whose process is killed stops renewing, so its
    account is free again at most one lease later and the next sync takes
    the lease over; the killed sync's run is then recorded as abandoned.
    """

    def __init__(self, account_id: int, token: str, seconds: float) -> None:
        self.account_id = account_id
        self.token = token
        self.seconds = seconds
        self.renewed = time.monotonic()

    @staticmethod
    def owner() -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    @classmethod
    def acquire(cls, account: ProviderAccount) -> SyncLease | None:
        """The lease if it is free or expired (its holder is gone), else None."""
        token = uuid.uuid4().hex
        seconds = float(settings.DELTAWEB_SYNC_LEASE_SECONDS)
        now = timezone.now()
        got = ProviderAccount.objects.filter(
            Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now), pk=account.pk
        ).update(
            sync_lock_until=now + timedelta(seconds=seconds),
            sync_lock_token=token,
            sync_lock_owner=cls.owner(),
        )
        if not got:
            return None
        # Whatever run is still "running" lost its process: only the lease holder syncs.
        SyncRun.objects.filter(account_id=account.pk, outcome=SyncRun.Outcome.RUNNING).update(
            outcome=SyncRun.Outcome.FAILED,
            finished_at=now,
            error="Abandoned: its process stopped renewing the sync lease (killed or hung)",
        )
        return cls(account.pk, token, seconds)

    def renew(self) -> None:
        """Extend the lease by a full term; SyncLeaseLost if another sync took it."""
        now = timezone.now()
        renewed = ProviderAccount.objects.filter(pk=self.account_id, sync_lock_token=self.token).update(
            sync_lock_until=now + timedelta(seconds=self.seconds)
        )
        if not renewed:
            raise SyncLeaseLost("The sync lease expired and another sync took it over")
        self.renewed = time.monotonic()

    def heartbeat(self) -> None:
        """Renew when a share of the lease has passed since the last renewal."""
        if time.monotonic() - self.renewed >= self.seconds / RENEWALS_PER_LEASE:
            self.renew()

    def release(self) -> None:
        ProviderAccount.objects.filter(pk=self.account_id, sync_lock_token=self.token).update(
            sync_lock_until=None, sync_lock_token="", sync_lock_owner=""
        )


class _Pages:
    """Counts a driver's pages, remembers the newest provider time seen, and
    keeps the lease alive between pages."""

    def __init__(self, pages: Iterable[Sequence[ProviderImage]], cursor: str, lease: SyncLease) -> None:
        self.pages = pages
        self.count = 0
        self.cursor = cursor
        self.lease = lease

    def __iter__(self) -> Iterator[Sequence[ProviderImage]]:
        for page in self.pages:
            self.lease.heartbeat()
            self.count += 1
            for image in page:
                if image.updated_at and image.updated_at > self.cursor:
                    self.cursor = image.updated_at
            yield page


def _with_heartbeat(pages: Iterable[Sequence], lease: SyncLease) -> Iterator[Sequence]:
    for page in pages:
        lease.heartbeat()
        yield page


# -- syncing ---------------------------------------------------------------------------


def _wants_incremental(account: ProviderAccount, driver: Driver, now: datetime, full: bool) -> bool:
    if full or not driver.capabilities.incremental_listing or not account.sync_cursor:
        return False
    last_full = account.last_full_sync_at
    return last_full is not None and now - last_full < timedelta(seconds=account.full_sync_interval)


def catalog_sync(*, account: ProviderAccount, full: bool = False) -> SyncResult:
    """List the account's images and instances and merge them into the cache.

    One sync per account at a time (``SyncLease``); a provider error anywhere
    in the listing leaves the cache as it was and is recorded on the account
    and its run. ``full`` forces a full listing where an incremental one would do.
    """
    lease = SyncLease.acquire(account)
    if lease is None:
        raise SyncInProgress(f"A sync of {account.name} is already running")
    try:
        return _sync(account, lease, full)
    finally:
        lease.release()
        # The caller's instance too, so saving it later cannot write the lease back.
        account.sync_lock_until, account.sync_lock_token, account.sync_lock_owner = None, "", ""


def _sync(account: ProviderAccount, lease: SyncLease, full: bool) -> SyncResult:
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
            lease,
        )
        image_merge = CatalogMerge(Image, IMAGE_COLUMNS)
        image_merge.stage_pages(pages, image_stage_row)
        instance_merge: CatalogMerge | None = CatalogMerge(Instance, INSTANCE_COLUMNS)
        try:
            instance_merge.stage_pages(
                _with_heartbeat(driver.iter_instance_pages(), lease), instance_row_values
            )
        except NotSupported:
            instance_merge = None
        lease.renew()  # a full term for the merge
        now = timezone.now()
        with transaction.atomic():
            images, instances, version = _merge(
                account, lease, image_merge, instance_merge, now, started, previous_success, incremental
            )
            purged = 0 if incremental else _purge_vanished(account, now)
    except SyncLeaseLost as exc:
        _record_run_failure(run, exc, time.monotonic() - t0)
        logger.warning("sync of %s stopped: %s", account.name, exc)
        raise
    except Exception as exc:
        _record_failure(account, run, exc, time.monotonic() - t0)
        raise
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
    if version != account.catalog_version:
        enqueue("search_catch_up_task", account.pk)  # the console's search, off the sync's clock
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
    lease: SyncLease,
    image_merge: CatalogMerge,
    instance_merge: CatalogMerge | None,
    now: datetime,
    started: datetime,
    previous_success: datetime | None,
    incremental: bool,
) -> tuple[MergeResult, MergeResult | None, int]:
    """Both merges under the account's row lock, writing one new catalog version.

    The row lock also keeps the lease: nobody can take it over until this
    transaction ends, and it is renewed in the transaction, so it is fresh
    when the row lock goes.
    """
    current = (
        ProviderAccount.objects.select_for_update()
        .filter(pk=account.pk, sync_lock_token=lease.token)
        .values_list("catalog_version", flat=True)
    ).first()
    if current is None:
        raise SyncLeaseLost("The sync lease expired and another sync took it over")
    lease.renew()
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


def _record_run_failure(run: SyncRun, exc: Exception, duration: float) -> str:
    error = f"{type(exc).__name__}: {exc}"
    SyncRun.objects.filter(pk=run.pk).update(
        kind=run.kind,
        outcome=SyncRun.Outcome.FAILED,
        finished_at=timezone.now(),
        duration=duration,
        error=error,
    )
    return error


def _record_failure(account: ProviderAccount, run: SyncRun, exc: Exception, duration: float) -> None:
    """A failed sync on its run and its account: backoff, and a flag for operators
    after repeated failures or rejected credentials."""
    error = _record_run_failure(run, exc, duration)
    now = timezone.now()
    failures = account.consecutive_failures + 1
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
        + timedelta(
            seconds=max(min(account.sync_interval * failures, 3600), getattr(exc, "retry_after", None) or 0)
        ),
    )
    account.refresh_from_db()
    if isinstance(exc, ProviderError):
        logger.warning("sync of %s failed: %s", account.name, error)
    else:
        logger.exception("sync of %s failed: %s", account.name, error)


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
