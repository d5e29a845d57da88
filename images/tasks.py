"""Celery tasks: load rows by id, call one service, decide about retrying."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from images import services
from images.models import ProviderAccount
from providers.exceptions import ProviderError

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def catalog_sync_task(account_id: int) -> None:
    account = ProviderAccount.objects.filter(pk=account_id, enabled=True).first()
    if account is None:
        return
    try:
        services.catalog_sync(account=account)
    except services.SyncInProgress:
        logger.info("sync of %s already running; request merged", account.name)
    except ProviderError:
        # Recorded on the account (error, backoff, operator flag) by the service.
        pass


@shared_task(ignore_result=True)
def sync_due_accounts_task() -> None:
    """Beat's tick: start a sync for every enabled account whose time has come."""
    now = timezone.now()
    due = ProviderAccount.objects.filter(enabled=True).filter(
        Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now)
    )
    for account_id in due.values_list("pk", flat=True):
        if services.sync_request(account_id=account_id):
            catalog_sync_task.delay(account_id)
