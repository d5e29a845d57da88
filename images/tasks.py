"""Celery tasks: load rows by id, call one service, decide about retrying.

Every task is idempotent and safe to deliver twice: operations are claimed
in the database before any provider call (``operations.operation_claim``).
Retries are new tasks with short countdowns scheduled by the services, never
sleeps inside a task, and the reaper (run by beat in its own process)
re-enqueues whatever was lost.
"""

from __future__ import annotations

import logging

from celery import shared_task

from images import health, operations, search, sync
from images.models import Operation, ProviderAccount
from providers.exceptions import ProviderError

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def catalog_sync_task(account_id: int) -> None:
    account = ProviderAccount.objects.filter(pk=account_id, enabled=True).first()
    if account is None:
        return
    try:
        sync.catalog_sync(account=account)
    except sync.SyncInProgress:
        logger.info("sync of %s already running; request merged", account.name)
    except ProviderError:
        # Recorded on the account (error, backoff, operator flag) by the service.
        pass


@shared_task(ignore_result=True)
def sync_due_accounts_task() -> None:
    """Beat's tick: start a sync for every enabled account whose time has come."""
    sync.sync_due_accounts()


@shared_task(acks_late=True, ignore_result=True)
def search_catch_up_task(account_id: int) -> None:
    """The console's search entries of one account, after its sync committed."""
    search.catch_up(account_id)


@shared_task(ignore_result=True)
def search_catch_up_lagging_task() -> None:
    """Beat's sweep: whatever an API write or a lost message left behind."""
    search.catch_up_lagging()


def _run(operation_id: int, run) -> None:
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        return  # finished, not due yet, or another worker has it
    run(op=op)


@shared_task(acks_late=True, ignore_result=True)
def image_create_task(operation_id: int) -> None:
    """The provider call of a create that returns no id (then polling)."""
    _run(operation_id, operations.image_create_run)


@shared_task(acks_late=True, ignore_result=True)
def image_poll_task(operation_id: int) -> None:
    """One look at a pending image; schedules the next look itself."""

    def run(*, op: Operation) -> None:
        if op.status in (Operation.Status.QUEUED, Operation.Status.CALLING):
            operations.image_create_run(op=op)
        else:
            operations.image_poll_run(op=op)

    _run(operation_id, run)


@shared_task(acks_late=True, ignore_result=True)
def image_delete_task(operation_id: int) -> None:
    _run(operation_id, operations.image_delete_run)


@shared_task(ignore_result=True)
def operations_reap_task() -> None:
    """The reaper on demand; beat runs it in its own process (deltaweb/celery.py)."""
    operations.operations_reap()


@shared_task(ignore_result=True)
def worker_ping_task(token: str) -> None:
    """A health check's round trip through one worker's pool (images/health.py)."""
    health.answer_ping(token)
