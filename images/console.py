"""What the operators' console reads and the few writes only it makes.

Account health is derived from the sync bookkeeping the services keep on the
account row; counts are one grouped query per model for a whole page of
accounts; history comes from ``SyncRun`` and ``Operation`` rows.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from images import search
from images.models import Image, Instance, Operation, ProviderAccount, SyncRun
from providers.exceptions import AuthFailure

# A sync request older than this, never picked up, no longer counts as "syncing".
QUEUED_FOR = timedelta(minutes=5)
# How the services word a rejected credential: the sync's error starts with the
# exception's class name (sync._record_failure); the API's and the worker's
# flags say "rejected the stored credentials" (api/exceptions.py, operations.py).
AUTH_ERROR_PREFIX = f"{AuthFailure.__name__}:"
AUTH_FLAG_TEXT = "rejected the stored credentials"


class Health(enum.StrEnum):
    """One word for an account's state, in the order an operator should care."""

    DISABLED = "disabled"
    SYNCING = "syncing"
    CREDENTIALS_REJECTED = "credentials rejected"
    FAILING = "failing"
    NEVER_SYNCED = "never synced"
    HEALTHY = "healthy"


def _credentials_rejected(account: ProviderAccount) -> bool:
    # A successful sync clears last_sync_error: a non-empty one is the last sync's.
    flagged = account.needs_attention and (
        AUTH_FLAG_TEXT in account.attention_reason or AUTH_ERROR_PREFIX in account.attention_reason
    )
    return account.last_sync_error.startswith(AUTH_ERROR_PREFIX) or flagged


def account_health(account: ProviderAccount, now: datetime | None = None) -> Health:
    now = now or timezone.now()
    if not account.enabled:
        return Health.DISABLED
    locked = account.sync_lock_until is not None and account.sync_lock_until > now
    queued = account.sync_requested_at is not None and now - account.sync_requested_at < QUEUED_FOR
    if locked or queued:
        return Health.SYNCING
    if _credentials_rejected(account):
        return Health.CREDENTIALS_REJECTED
    if account.needs_attention or account.last_sync_error:
        return Health.FAILING
    if account.last_sync_succeeded_at is None:
        return Health.NEVER_SYNCED
    return Health.HEALTHY


def health_filter(health: Health, now: datetime | None = None) -> Q:
    """The accounts in one health state, as a query; the same rules as ``account_health``."""
    now = now or timezone.now()
    syncing = Q(sync_lock_until__gt=now) | Q(sync_requested_at__gt=now - QUEUED_FOR)
    rejected = Q(last_sync_error__startswith=AUTH_ERROR_PREFIX) | (
        Q(needs_attention=True)
        & (Q(attention_reason__contains=AUTH_FLAG_TEXT) | Q(attention_reason__contains=AUTH_ERROR_PREFIX))
    )
    failing = Q(needs_attention=True) | ~Q(last_sync_error="")
    enabled = Q(enabled=True) & ~syncing
    return {
        Health.DISABLED: Q(enabled=False),
        Health.SYNCING: Q(enabled=True) & syncing,
        Health.CREDENTIALS_REJECTED: enabled & rejected,
        Health.FAILING: enabled & failing & ~rejected,
        Health.NEVER_SYNCED: enabled & ~failing & Q(last_sync_succeeded_at__isnull=True),
        Health.HEALTHY: enabled & ~failing & Q(last_sync_succeeded_at__isnull=False),
    }[health]


# -- counts ----------------------------------------------------------------------


def _count(model, **filters) -> Coalesce:
    rows = (
        model.objects.filter(account=OuterRef("pk"), **filters)
        .order_by()
        .values("account")
        .annotate(n=Count("*"))  # COUNT(*), not COUNT(id): answered from the index alone
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


VISIBLE_IMAGES = {"missing_since__isnull": True, "deleted_at__isnull": True}
PRESENT_INSTANCES = {"missing_since__isnull": True}


def with_counts(accounts: QuerySet[ProviderAccount]) -> QuerySet[ProviderAccount]:
    """Accounts annotated with what the console shows about each, in the same query.

    Each count is an index range of that account's rows (``account_id``), so a
    page of accounts costs one query, not one per account and count.
    """
    return accounts.annotate(
        image_count=_count(Image, **VISIBLE_IMAGES),
        instance_count=_count(Instance, **PRESENT_INSTANCES),
        running_count=_count(Operation, status__in=Operation.ACTIVE),
        failed_count=_count(Operation, status=Operation.Status.FAILED),
    )


# -- history ---------------------------------------------------------------------


def sync_history(*, account: ProviderAccount, limit: int = 30) -> list[SyncRun]:
    """The account's latest runs, oldest first (what the charts draw)."""
    runs = list(SyncRun.objects.filter(account=account).order_by("-started_at")[:limit])
    runs.reverse()
    return runs


@dataclass(frozen=True)
class DayOutcomes:
    """How the operations that finished on one day ended."""

    day: date
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None


def operation_outcomes(*, account: ProviderAccount, days: int = 14) -> list[DayOutcomes]:
    """One entry per day of the last ``days`` days (today included), oldest first."""
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = (
        Operation.objects.filter(account=account, finished_at__gte=since)
        .exclude(status__in=Operation.ACTIVE)
        .annotate(day=TruncDate("finished_at"))
        .order_by()
        .values("day", "status")
        .annotate(n=Count("pk"))
    )
    tally: dict[date, dict[str, int]] = {}
    for row in rows:
        tally.setdefault(row["day"], {})[row["status"]] = row["n"]
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        counts = tally.get(day, {})
        out.append(
            DayOutcomes(
                day=day,
                succeeded=counts.get(Operation.Status.SUCCEEDED, 0),
                failed=counts.get(Operation.Status.FAILED, 0),
                cancelled=counts.get(Operation.Status.CANCELLED, 0),
            )
        )
    return out


# -- deleting an account -------------------------------------------------------------


def account_delete_summary(*, accounts: Sequence[ProviderAccount]) -> dict[str, int]:
    """What deleting these accounts removes, as counts (never one line per row)."""
    ids = [a.pk for a in accounts]
    return {
        "provider accounts": len(ids),
        "cached images": Image.objects.filter(account_id__in=ids).count(),
        "cached instances": Instance.objects.filter(account_id__in=ids).count(),
        "operations": Operation.objects.filter(account_id__in=ids).count(),
        "sync runs": SyncRun.objects.filter(account_id__in=ids).count(),
    }


def account_delete(*, account: ProviderAccount) -> None:
    """Forget an account and its cache; nothing is deleted at the provider.

    The cached rows go in set-based statements: the ORM's cascade would load
    every image (operations point at images with SET NULL) first.
    """
    with transaction.atomic():
        Operation.objects.filter(account=account).delete()
        SyncRun.objects.filter(account=account).delete()
        Instance.objects.filter(account=account).delete()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Operation._meta.db_table} SET image_id = NULL WHERE image_id IN "
                f"(SELECT id FROM {Image._meta.db_table} WHERE account_id = %s)",
                [account.pk],
            )
            cursor.execute(f"DELETE FROM {Image._meta.db_table} WHERE account_id = %s", [account.pk])
        search.forget_account(account.pk)
        account.delete()
