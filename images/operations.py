"""Services for the slow writes: image create/delete tracked to a terminal state,
and the instance actions that go with them.

The request path validates and records an ``Operation``; the provider's slow
work and the polling happen in the worker (``images.tasks``), one short
claimed attempt per task. Every attempt is idempotent: a redelivered or
duplicated task finds the operation already claimed, not yet due, or
finished, and does nothing.
"""

from __future__ import annotations

import logging
import random
import time
import unicodedata
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from images.models import Image, Instance, Operation, ProviderAccount
from images.queue import enqueue
from images.services import (
    account_flag,
    build_driver,
    capabilities,
    catalog_touch,
    image_lookup,
    image_store,
    instance_store,
)
from providers.base import ImageState, ProviderImage, ProviderInstance, RunResult
from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    ProviderError,
    ProviderTimeout,
)

logger = logging.getLogger(__name__)
OP = Operation.Status
PROVISIONAL_PREFIX = "PENDING-"


# -- enqueueing ------------------------------------------------------------------------


def _enqueue(task_name: str, operation_id: int, countdown: float = 0) -> None:
    """Send after commit; a broker outage only delays the operation (the reaper
    finds it through ``next_poll_at``), it never fails the request."""
    enqueue(task_name, operation_id, countdown=countdown)


def _task_for(op: Operation) -> str:
    if op.kind == Operation.Kind.DELETE_IMAGE:
        return "image_delete_task"
    if op.status in (OP.QUEUED, OP.CALLING):
        return "image_create_task"
    return "image_poll_task"


def _backoff(attempt: int) -> float:
    base = settings.DELTAWEB_POLL_BASE_SECONDS * (2 ** min(attempt, 16))
    delay = min(base, settings.DELTAWEB_POLL_MAX_SECONDS)
    return delay * random.uniform(0.8, 1.2)


def _fast_sync(account: ProviderAccount) -> None:
    now = timezone.now()
    soon = now + timedelta(seconds=settings.DELTAWEB_FAST_SYNC_INTERVAL)
    ProviderAccount.objects.filter(pk=account.pk).update(
        fast_sync_until=now + timedelta(seconds=settings.DELTAWEB_FAST_SYNC_WINDOW)
    )
    ProviderAccount.objects.filter(pk=account.pk).filter(
        Q(next_sync_at__isnull=True) | Q(next_sync_at__gt=soon)
    ).update(next_sync_at=soon)


# -- validation --------------------------------------------------------------------------


def _check_text(field: str, value: str | None, max_length: int, allow_newlines: bool) -> None:
    if value is None:
        return
    if len(value) > max_length:
        raise InvalidParameter(f"Parameter '{field}' is longer than {max_length} characters")
    allowed = {"\n", "\r", "\t"} if allow_newlines else set()
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        raise InvalidParameter(f"Parameter '{field}' contains control characters")


def instance_refresh(*, account: ProviderAccount, external_id: str) -> Instance | None:
    """The instance as the provider sees it now (instance state decides imaging)."""
    driver = build_driver(account=account)
    try:
        remote = driver.get_instance(external_id)
    except NotSupported:
        return Instance.objects.filter(
            account=account, external_id=external_id, missing_since__isnull=True
        ).first()
    if remote is None:
        Instance.objects.filter(account=account, external_id=external_id).update(missing_since=timezone.now())
        return None
    return instance_store(account=account, instance=remote)


def _resolve_image(account: ProviderAccount, external_id: str) -> Image | None:
    """A visible image by id, or by the provisional id a create answered with."""
    visible = Image.objects.filter(account=account, missing_since__isnull=True, deleted_at__isnull=True)
    image = visible.filter(external_id=external_id).first()
    if image is None and external_id.startswith(PROVISIONAL_PREFIX):
        op = (
            Operation.objects.filter(account=account, provisional_id=external_id)
            .exclude(external_id="")
            .order_by("-created_at")
            .first()
        )
        if op is not None:
            image = visible.filter(external_id=op.external_id).first()
    return image


def image_resolve_alias(*, account: ProviderAccount, external_id: str) -> str | None:
    """The real id behind a provisional ``PENDING-<name>`` id, once found."""
    if not external_id.startswith(PROVISIONAL_PREFIX):
        return None
    op = (
        Operation.objects.filter(account=account, provisional_id=external_id)
        .exclude(external_id="")
        .order_by("-created_at")
        .first()
    )
    return op.external_id if op else None


# -- create ------------------------------------------------------------------------------


def _deadline(account: ProviderAccount) -> timedelta:
    seconds = account.create_timeout or settings.DELTAWEB_CREATE_DEADLINE_SECONDS
    return timedelta(seconds=float(seconds))


def image_create(
    *, account: ProviderAccount, user, instance_id: str, name: str | None, description: str | None
) -> tuple[Image, Operation]:
    """Validate synchronously, then start the create.

    Drivers that return the new id quickly are called here and the 201
    carries the real id; the others answer with ``PENDING-<name>`` and the
    worker makes the call and finds the image.
    """
    caps = capabilities(account=account)
    if not caps.create_image:
        raise NotSupported(f"The {account.driver} driver cannot create images")
    if not instance_id:
        raise InvalidParameter("Required parameter 'instance_id' not found")
    _check_text("name", name, caps.image_name_max_length, allow_newlines=False)
    _check_text("description", description, settings.DELTAWEB_IMAGE_DESCRIPTION_MAX_LENGTH, True)
    instance = instance_refresh(account=account, external_id=instance_id)
    if instance is None:
        raise NotFound(f"Instance {instance_id} not found")
    if instance.create_image_refusal:
        raise InvalidState(instance.create_image_refusal)
    if not caps.honours_image_name:
        name = None
    elif not name and not caps.create_returns_id:
        # The name is how we find an image the provider gives no id for.
        name = f"{instance.name or instance.external_id}-{int(time.time())}"
    if (
        name
        and caps.unique_image_names
        and Image.objects.filter(
            account=account, name=name, missing_since__isnull=True, deleted_at__isnull=True
        ).exists()
    ):
        raise Conflict(f"An image named '{name}' already exists")

    now = timezone.now()
    common = {
        "account": account,
        "kind": Operation.Kind.CREATE_IMAGE,
        "requested_by": user,
        "instance_id": instance_id,
        "name": name or "",
        "description": description,
        "deadline": now + _deadline(account),
    }
    driver = build_driver(account=account)
    if caps.create_returns_id:
        remote = driver.create_image(instance_id=instance_id, name=name or "", description=description)
        with transaction.atomic():
            image = image_store(account=account, image=remote, resurrect=True)
            finished = remote.state.terminal
            op = Operation.objects.create(
                **common,
                image=image,
                external_id=remote.id,
                status=_terminal_status(remote.state) if finished else OP.POLLING,
                last_error=remote.failure_reason,
                finished_at=now if finished else None,
                next_poll_at=None if finished else now,
            )
            if not finished:
                _enqueue("image_poll_task", op.pk, countdown=_backoff(0))
            _fast_sync(account)
        return image, op

    provisional = f"{PROVISIONAL_PREFIX}{name}"
    with transaction.atomic():
        # Names are not unique on such providers and the name is how the worker
        # finds the image, so same-named creates go one at a time: a concurrent
        # one waits on the account row, then sees the first and is refused, also
        # once the worker has found the first image but it is not ready yet.
        ProviderAccount.objects.select_for_update().filter(pk=account.pk).first()
        if Operation.objects.filter(
            account=account, provisional_id=provisional, status__in=Operation.ACTIVE
        ).exists():
            raise Conflict(f"An image named '{name}' is already being created")
        # A failed earlier attempt with the same name leaves its placeholder.
        Image.objects.filter(account=account, external_id=provisional).delete()
        image = Image.objects.create(
            account=account,
            external_id=provisional,
            name=name,
            description=description,
            state="PENDING",
            status=ImageState.PENDING,
            root_type="transient",
            owner_id=account.owner_identity,
        )
        op = Operation.objects.create(
            **common, image=image, provisional_id=provisional, status=OP.QUEUED, next_poll_at=now
        )
        catalog_touch(account=account, image_ids=[image.pk])
        _enqueue("image_create_task", op.pk)
        _fast_sync(account)
    return image, op


def _terminal_status(state: ImageState) -> str:
    return OP.SUCCEEDED if state == ImageState.AVAILABLE else OP.FAILED


# -- worker side: claiming ----------------------------------------------------------------


def operation_claim(*, operation_id: int) -> Operation | None:
    """Own one attempt of an operation, or None when it is not ours to run now."""
    now = timezone.now()
    claimed = (
        Operation.objects.filter(pk=operation_id, status__in=Operation.ACTIVE)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now + timedelta(seconds=0.5)))
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=settings.DELTAWEB_CLAIM_SECONDS))
    )
    if not claimed:
        return None
    op = Operation.objects.select_related("account", "image").get(pk=operation_id)
    Operation.objects.filter(pk=op.pk).update(attempts=op.attempts + 1)
    op.attempts += 1
    return op


def _save(op: Operation, **fields) -> bool:
    """Write the worker's progress; False when an operator cancelled the operation
    meanwhile (``operation_control.operation_cancel``): its late writes are dropped."""
    for key, value in fields.items():
        setattr(op, key, value)
    fields["updated_at"] = timezone.now()
    return bool(Operation.objects.filter(pk=op.pk, status__in=Operation.ACTIVE).update(**fields))


def _schedule_next(op: Operation, error: str = "", *, retry_after: float | None = None) -> None:
    """Poll again later, or fail the operation once its deadline has passed.

    ``retry_after`` is how long the provider asked us to wait (HTTP
    Retry-After on a 413/429): the next attempt is never sooner.
    """
    now = timezone.now()
    if now >= op.deadline:
        reason = f"Gave up after the deadline ({op.attempts} attempts)"
        if error or op.last_error:
            reason += f"; last error: {error or op.last_error}"
        _finish(op, OP.FAILED, reason)
        return
    delay = max(_backoff(op.attempts), retry_after or 0)
    with transaction.atomic():
        if _save(
            op,
            next_poll_at=now + timedelta(seconds=delay),
            claimed_until=None,
            last_error=error or op.last_error,
        ):
            _enqueue(_task_for(op), op.pk, countdown=delay)


def _finish(op: Operation, status: str, reason: str = "") -> None:
    now = timezone.now()
    with transaction.atomic():
        finished = _save(
            op, status=status, last_error=reason, finished_at=now, claimed_until=None, next_poll_at=None
        )
        if not finished:
            logger.info("operation %s was cancelled; the worker's %s is dropped", op.pk, status)
            return
        if op.image_id is None:
            return
        catalog_touch(account=op.account, image_ids=[op.image_id])  # the account first, then the row
        if op.kind == Operation.Kind.CREATE_IMAGE and status == OP.FAILED:
            failed = {"status": ImageState.FAILED, "failure_reason": reason}
            if not op.external_id:
                failed["state"] = "FAILED"  # a placeholder has no provider state to show
            Image.objects.filter(pk=op.image_id).update(**failed)
        elif op.kind == Operation.Kind.DELETE_IMAGE and status == OP.FAILED:
            # The provider refused: the image is back, with the reason.
            Image.objects.filter(pk=op.image_id).update(
                deleted_at=None, failure_reason=f"Delete failed: {reason}"
            )
    logger.info("operation %s %s: %s %s", op.pk, op.kind, status, reason)


# -- worker side: create -------------------------------------------------------------------


def image_create_run(*, op: Operation) -> None:
    """The provider call of a create that returned no id, then the first poll."""
    driver = build_driver(account=op.account)
    if op.status != OP.QUEUED:
        # CALLING: a previous attempt died during the call, which may have
        # reached the provider; POLLING: the call happened. Either way look
        # for the image, never create a second one.
        _save(op, status=OP.POLLING)
        image_poll_run(op=op)
        return
    # What already carries the name is never adopted: the provider's view
    # (the driver's own name search) and the cache's.
    preexisting = sorted(
        {i.id for i in driver.find_created_images(name=op.name, exclude_ids=frozenset())}
        | set(Image.objects.filter(account=op.account, name=op.name).values_list("external_id", flat=True))
    )
    if not _save(op, status=OP.CALLING, preexisting_ids=preexisting):
        return  # cancelled before the provider was called
    try:
        remote = driver.create_image(instance_id=op.instance_id, name=op.name, description=op.description)
    except ProviderTimeout as exc:
        _save(op, status=OP.POLLING)  # it may have happened: look for it
        _schedule_next(op, str(exc))
        return
    except ProviderError as exc:
        if exc.retryable:
            _save(op, status=OP.QUEUED)
            _schedule_next(op, str(exc), retry_after=exc.retry_after)
        else:
            _finish(op, OP.FAILED, str(exc))
        return
    _save(op, status=OP.POLLING)
    if remote.id:
        _adopt(op, remote)
    _after_poll(op, remote if remote.id else None)


def _candidates(op: Operation) -> list[ProviderImage]:
    driver = build_driver(account=op.account)
    taken = set(op.preexisting_ids) | set(
        Operation.objects.filter(account=op.account, kind=Operation.Kind.CREATE_IMAGE)
        .exclude(pk=op.pk)
        .exclude(external_id="")
        .values_list("external_id", flat=True)
    )
    found = driver.find_created_images(name=op.name, exclude_ids=frozenset(taken))
    return sorted(found, key=lambda i: i.id)


def _retire_placeholder(image_id: int, version: int) -> None:
    """The placeholder of a create becomes a tombstone, so the delta feed tells
    clients that its provisional id is gone; sync purges it after the retention."""
    now = timezone.now()
    Image.objects.filter(pk=image_id).update(
        deleted_at=now, missing_since=now, last_seen=now, changed_version=version
    )


def _tombstone(op: Operation, external_id: str, version: int) -> None:
    """A tombstone for the provisional id the client was answered with, which
    the placeholder no longer carries: the delta feed reports it gone."""
    now = timezone.now()
    try:
        with transaction.atomic():
            Image.objects.create(
                account=op.account,
                external_id=external_id,
                name=op.name,
                state="PENDING",
                status=ImageState.PENDING,
                first_seen=now,
                last_seen=now,
                missing_since=now,
                deleted_at=now,
                changed_version=version,
            )
    except IntegrityError:
        pass  # a row with that id exists again (a new create of the same name)


def _adopt(op: Operation, remote: ProviderImage) -> None:
    """Give the placeholder row the real id (or merge it into a row a sync made)."""
    with transaction.atomic():
        version = catalog_touch(account=op.account)  # the account first, then the rows
        existing = Image.objects.filter(account=op.account, external_id=remote.id).first()
        if existing is not None and existing.pk != op.image_id:
            if op.image_id:
                _retire_placeholder(op.image_id, version)
            op.image = existing
        elif op.image_id:
            placeholder = Image.objects.filter(pk=op.image_id).values_list("external_id", flat=True).first()
            try:
                with transaction.atomic():  # a savepoint: the race below must not break the block
                    renamed = Image.objects.filter(pk=op.image_id)
                    renamed.update(external_id=remote.id, changed_version=version)
            except IntegrityError:  # a sync inserted it meanwhile
                _retire_placeholder(op.image_id, version)
                op.image = Image.objects.get(account=op.account, external_id=remote.id)
            else:
                if placeholder and placeholder != remote.id:
                    _tombstone(op, placeholder, version)
        _save(op, external_id=remote.id, image=op.image)
        image_store(account=op.account, image=remote, resurrect=True)
    op.refresh_from_db()


def image_poll_run(*, op: Operation) -> None:
    """One look at a pending create."""
    if op.image_id and Image.objects.filter(pk=op.image_id, deleted_at__isnull=False).exists():
        _finish(op, OP.FAILED, "Deleted before it became available")
        return
    driver = build_driver(account=op.account)
    try:
        if op.external_id:
            remote = driver.get_image(op.external_id)
            if remote is None:
                _finish(op, OP.FAILED, f"Image {op.external_id} disappeared from the provider")
                return
        else:
            found = _candidates(op)
            remote = found[0] if found else None
            if remote is not None:
                _adopt(op, remote)
    except ProviderError as exc:
        if isinstance(exc, AuthFailure):
            account_flag(account=op.account, reason=f"The provider rejected the stored credentials: {exc}")
        _schedule_next(op, f"{type(exc).__name__}: {exc}", retry_after=exc.retry_after)
        return
    _after_poll(op, remote)


def _after_poll(op: Operation, remote: ProviderImage | None) -> None:
    if not Operation.objects.filter(pk=op.pk, status__in=Operation.ACTIVE).exists():
        return  # cancelled during this look: the image keeps the operator's final state
    if remote is not None:
        # One transaction: a reader never sees the image final while its operation still polls.
        with transaction.atomic():
            image_store(account=op.account, image=remote, resurrect=False)
            if remote.state.terminal:
                reason = remote.failure_reason or (
                    "" if remote.state == ImageState.AVAILABLE else f"The provider reports {remote.raw_state}"
                )
                _finish(op, _terminal_status(remote.state), reason)
                return
    _schedule_next(op)


# -- delete ------------------------------------------------------------------------------


def image_delete(*, account: ProviderAccount, user, external_id: str) -> Operation:
    """Tombstone the image now; the worker asks the provider to delete it.

    Drivers whose provider accepts or refuses a delete at once (``destroy_in_request``)
    are called here instead, so a refusal is this request's 4xx.
    """
    caps = capabilities(account=account)
    if not caps.destroy_image:
        raise NotSupported(f"The {account.driver} driver cannot destroy images")
    image = _resolve_image(account, external_id)
    if image is None:
        image = image_lookup(account=account, external_id=external_id)
    if image is None:
        raise NotFound(f"Image {external_id} not found")
    if (
        image.external_id.startswith(PROVISIONAL_PREFIX)
        and Operation.objects.filter(image=image, status__in=Operation.ACTIVE, external_id="").exists()
    ):
        raise Conflict(f"Image {external_id} is still being created and has no provider id yet")
    done_now = caps.destroy_in_request and not image.external_id.startswith(PROVISIONAL_PREFIX)
    if done_now:
        try:
            build_driver(account=account).destroy_image(image.external_id)
        except NotFound:
            pass  # already gone: what we wanted
    now = timezone.now()
    with transaction.atomic():
        # The account first (as every catalog writer), then the row: of concurrent
        # deletes of one image only the first finds it still there.
        catalog_touch(account=account, image_ids=[image.pk])
        if not Image.objects.filter(pk=image.pk, deleted_at__isnull=True).update(deleted_at=now):
            raise NotFound(f"Image {external_id} not found")
        op = Operation.objects.create(
            account=account,
            image=image,
            kind=Operation.Kind.DELETE_IMAGE,
            requested_by=user,
            external_id=image.external_id,
            status=OP.SUCCEEDED if done_now else OP.QUEUED,
            next_poll_at=None if done_now else now,
            finished_at=now if done_now else None,
            deadline=now + timedelta(seconds=settings.DELTAWEB_DELETE_DEADLINE_SECONDS),
        )
        if not done_now:
            _enqueue("image_delete_task", op.pk)
        _fast_sync(account)
    return op


def image_delete_run(*, op: Operation) -> None:
    driver = build_driver(account=op.account)
    if not _save(op, status=OP.CALLING):
        return  # cancelled before the provider was called
    try:
        driver.destroy_image(op.external_id)
    except NotFound:
        pass  # already gone: what we wanted
    except ProviderError as exc:
        if exc.retryable:
            _save(op, status=OP.QUEUED)
            _schedule_next(op, f"{type(exc).__name__}: {exc}", retry_after=exc.retry_after)
        else:
            _finish(op, OP.FAILED, str(exc))
        return
    # The row stays tombstoned until a sync no longer lists the image.
    _finish(op, OP.SUCCEEDED)


# -- the reaper -------------------------------------------------------------------------------


def operations_reap() -> int:
    """Re-enqueue operations whose next step is overdue (lost task, dead worker,
    flushed broker). Returns how many were re-enqueued."""
    now = timezone.now()
    grace = timedelta(seconds=settings.DELTAWEB_REAPER_GRACE_SECONDS)
    overdue = Operation.objects.filter(status__in=Operation.ACTIVE, next_poll_at__lt=now - grace).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    count = 0
    for op in overdue:
        with transaction.atomic():
            if Operation.objects.filter(pk=op.pk, next_poll_at=op.next_poll_at).update(next_poll_at=now):
                _enqueue(_task_for(op), op.pk)
                count += 1
    # A claim that outlived its worker: the operation is due again.
    stuck = Operation.objects.filter(
        status__in=Operation.ACTIVE, next_poll_at__isnull=True, claimed_until__lt=now
    )
    for op in stuck:
        with transaction.atomic():
            if Operation.objects.filter(pk=op.pk, next_poll_at__isnull=True).update(next_poll_at=now):
                _enqueue(_task_for(op), op.pk)
                count += 1
    if count:
        logger.warning("reaper re-enqueued %d overdue operation(s)", count)
    return count


def operations_poll_now(*, operation_ids: list[int]) -> int:
    """Operators' "run the next step now": make active operations due at once."""
    now = timezone.now()
    count = 0
    for op in Operation.objects.filter(pk__in=operation_ids, status__in=Operation.ACTIVE):
        with transaction.atomic():
            Operation.objects.filter(pk=op.pk).update(next_poll_at=now, claimed_until=None)
            _enqueue(_task_for(op), op.pk)
            count += 1
    return count


# -- instances -----------------------------------------------------------------------------------


def instance_create(*, account: ProviderAccount, image_id: str, options: dict[str, str]) -> Instance:
    if not capabilities(account=account).create_instance:
        raise NotSupported(f"The {account.driver} driver cannot create instances")
    if not image_id:
        raise InvalidParameter("Required parameter 'image_id' not found")
    for key, value in options.items():
        _check_text(key, value, 255, allow_newlines=key == "user_data")
    remote = build_driver(account=account).create_instance(image_id=image_id, **options)
    with transaction.atomic():
        row = instance_store(account=account, instance=remote)
        _fast_sync(account)
    return row


def instance_action(*, account: ProviderAccount, external_id: str, action: str) -> Instance:
    remote: ProviderInstance = build_driver(account=account).instance_action(external_id, action)
    return instance_store(account=account, instance=remote)


def instance_destroy(*, account: ProviderAccount, external_id: str) -> None:
    build_driver(account=account).destroy_instance(external_id)
    now = timezone.now()
    with transaction.atomic():
        catalog_touch(account=account)  # the account first, then the row
        Instance.objects.filter(account=account, external_id=external_id).update(missing_since=now)


def instance_run(*, account: ProviderAccount, external_id: str, command: str) -> RunResult:
    if not command:
        raise InvalidParameter("Required parameter 'cmd' not found")
    return build_driver(account=account).run_on_instance(external_id, command)
