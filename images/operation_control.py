"""Operators' control over operations: retry what failed, cancel what runs.

A retry never revives the old row: it repeats the request through the same
services the API uses (``image_create`` / ``image_delete``, with their
validation and refusals) as a new operation linked to the old one. A cancel
finishes the operation at once with a final state on its image; the worker
honours it because every write it makes is conditional on the operation still
being active (``operations._save``), and it claims only active operations.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from images.models import Image, Operation
from images.operations import image_create, image_delete
from images.services import catalog_touch
from providers.base import ImageState
from providers.exceptions import Conflict

logger = logging.getLogger(__name__)
OP = Operation.Status


class OperationStateError(Conflict):
    """The operation is not in a state that allows the operator's request."""


def operation_retry(*, operation: Operation, user) -> Operation:
    """Repeat a failed or cancelled create/delete as a new operation.

    Raises the services' provider errors as the API would (a name now taken,
    an image already gone, a driver that cannot), so the operator sees why.
    """
    if operation.status not in Operation.RETRYABLE:
        raise OperationStateError(
            f"Operation {operation.pk} is {operation.status}: only failed or cancelled ones can be retried"
        )
    running = operation.retries.filter(status__in=Operation.ACTIVE).values_list("pk", flat=True).first()
    if running is not None:
        raise OperationStateError(f"Operation {operation.pk} is already being retried as {running}")
    account = operation.account
    if operation.kind == Operation.Kind.DELETE_IMAGE:
        retry = image_delete(account=account, user=user, external_id=operation.external_id)
    else:
        _, retry = image_create(
            account=account,
            user=user,
            instance_id=operation.instance_id,
            name=operation.name or None,
            description=operation.description,
        )
    Operation.objects.filter(pk=retry.pk).update(retry_of=operation)
    retry.retry_of = operation
    logger.info("operation %s retried as %s by %s", operation.pk, retry.pk, user)
    return retry


def operation_cancel(*, operation: Operation, user) -> Operation:
    """Stop an active operation now and give its image a final state.

    A create's image becomes FAILED with the reason (a later sync shows the
    provider's truth if the provider finishes it anyway); a delete's image
    comes back. The provider is not asked to undo a call already made.
    """
    now = timezone.now()
    who = user.get_username() if user is not None else "an operator"
    with transaction.atomic():
        reason = (
            f"Cancelled by {who}"
            if operation.status == OP.QUEUED
            else f"Cancelled by {who} while {operation.status}: a provider call already made is not undone"
        )
        stopped = Operation.objects.filter(pk=operation.pk, status__in=Operation.ACTIVE).update(
            status=OP.CANCELLED,
            last_error=reason,
            finished_at=now,
            next_poll_at=None,
            claimed_until=None,
            updated_at=now,
        )
        if not stopped:
            operation.refresh_from_db(fields=["status"])
            raise OperationStateError(
                f"Operation {operation.pk} is {operation.status}: only running ones can be cancelled"
            )
        if operation.image_id is not None:
            # The account first, then the image row: sync's merge takes them in that order.
            catalog_touch(account=operation.account, image_ids=[operation.image_id])
            images = Image.objects.filter(pk=operation.image_id)
            if operation.kind == Operation.Kind.CREATE_IMAGE:
                images.update(status=ImageState.FAILED, state="FAILED", failure_reason=reason)
            else:
                images.update(deleted_at=None, failure_reason=f"Delete {reason[0].lower()}{reason[1:]}")
    operation.refresh_from_db()
    logger.info("operation %s cancelled by %s", operation.pk, who)
    return operation
