"""Operators' retry and cancel: the services, and the worker honouring a cancel.

Task bodies run in-process here (one attempt per call, as in test_operations);
tests/browser drives the same through the admin with a real worker.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from images import operations, services, tasks
from images.models import Image, Operation
from images.operation_control import OperationStateError, operation_cancel, operation_retry
from providers.exceptions import Conflict
from tests.images.test_operations import account_with, drive

pytestmark = pytest.mark.django_db
OP = Operation.Status
XML = {"HTTP_ACCEPT": "application/xml"}
REFUSAL = "Cannot delete Template. Template is being used by the following VMs"


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("operator", password="operator-pw-1")


@pytest.fixture
def enqueued(monkeypatch, django_capture_on_commit_callbacks):
    sent: list[tuple[str, tuple]] = []
    for name in ("image_create_task", "image_poll_task", "image_delete_task"):
        monkeypatch.setattr(
            getattr(tasks, name),
            "apply_async",
            lambda args, countdown=0, _n=name: sent.append((_n, tuple(args))),
        )
    return sent


def refused_delete(api_user, callbacks):
    """A delete the provider refused: RHEV-M's template in use by two VMs."""
    account = account_with(api_user, profile="rhevm")
    with callbacks(execute=True):
        op = operations.image_delete(account=account, user=api_user, external_id="img1")
    op = drive(op.pk)
    assert op.status == OP.FAILED and op.last_error.startswith(REFUSAL)
    return account, op


def free_template(account) -> None:
    """Stop and destroy the VMs made from img1, at the provider."""
    driver = services.build_driver(account=account)
    for instance in ("inst0", "inst2"):
        driver.instance_action(instance, "stop")
        driver.destroy_instance(instance)


# -- retry ------------------------------------------------------------------------------


def test_retry_of_a_refused_delete_succeeds_once_the_refusal_is_gone(
    api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    # given: a delete the provider refused, whose reason an operator then removed
    account, failed = refused_delete(api_user, django_capture_on_commit_callbacks)
    assert Image.objects.get(external_id="img1").deleted_at is None  # the refusal brought it back
    free_template(account)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        retry = operation_retry(operation=failed, user=operator)
    # then: a new operation, through the API's delete path (tombstone, then the worker)
    assert retry.pk != failed.pk and retry.retry_of == failed and retry.requested_by == operator
    assert Image.objects.get(external_id="img1").deleted_at is not None
    assert drive(retry.pk).status == OP.SUCCEEDED
    assert services.build_driver(account=account).get_image("img1") is None
    failed.refresh_from_db()
    assert failed.status == OP.FAILED  # history is kept as it happened
    assert list(failed.retries.all()) == [retry]


def test_a_retry_meets_the_same_refusal_while_it_stands(
    api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    _, failed = refused_delete(api_user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        retry = operation_retry(operation=failed, user=operator)
    again = drive(retry.pk)
    assert again.status == OP.FAILED and again.last_error.startswith(REFUSAL)


def test_a_running_retry_is_not_retried_twice(
    api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    account, failed = refused_delete(api_user, django_capture_on_commit_callbacks)
    free_template(account)
    with django_capture_on_commit_callbacks(execute=True):
        retry = operation_retry(operation=failed, user=operator)
    with pytest.raises(OperationStateError, match=f"already being retried as {retry.pk}"):
        operation_retry(operation=failed, user=operator)


def test_only_failed_or_cancelled_operations_are_retried(
    api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    account = account_with(api_user, profile="ec2", create_delay=60)
    with django_capture_on_commit_callbacks(execute=True):
        _, running = operations.image_create(
            account=account, user=api_user, instance_id="inst1", name="slow", description=None
        )
    with pytest.raises(OperationStateError, match="only failed or cancelled"):
        operation_retry(operation=running, user=operator)


def test_retry_of_a_failed_create_creates_again(
    api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    # given: a cloud whose creates fail, and whose names need not be unique
    account = account_with(api_user, profile="ec2", failure_rate=1.0, unique_names=False, create_delay=0)
    with django_capture_on_commit_callbacks(execute=True):
        _, op = operations.image_create(
            account=account, user=api_user, instance_id="inst1", name="nightly", description="d"
        )
    failed = drive(op.pk)
    assert failed.status == OP.FAILED
    # when: the cloud is fixed and the operator retries
    account.params = {**account.params, "failure_rate": 0.0}
    account.save(update_fields=["params"])
    with django_capture_on_commit_callbacks(execute=True):
        retry = operation_retry(operation=failed, user=operator)
    # then: the same request again, carried to success
    assert (retry.kind, retry.instance_id, retry.name, retry.description) == (
        Operation.Kind.CREATE_IMAGE,
        "inst1",
        "nightly",
        "d",
    )
    done = drive(retry.pk)
    assert done.status == OP.SUCCEEDED
    assert Image.objects.get(pk=done.image_id).status == "AVAILABLE"


def test_retry_says_why_the_api_would_refuse(
    api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    # EC2 names are unique: the failed image still holds the name
    account = account_with(api_user, profile="ec2", failure_rate=1.0, create_delay=0)
    with django_capture_on_commit_callbacks(execute=True):
        _, op = operations.image_create(
            account=account, user=api_user, instance_id="inst1", name="nightly", description=None
        )
    failed = drive(op.pk)
    with pytest.raises(Conflict, match="An image named 'nightly' already exists"):
        operation_retry(operation=failed, user=operator)
    assert Operation.objects.count() == 1


# -- cancel -------------------------------------------------------------------------------


def test_cancel_of_a_polled_create_fails_its_image_and_the_worker_leaves_it(
    auth_client, api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    # given: a create the provider takes ten minutes over
    account = account_with(api_user, profile="ec2", create_delay=600)
    with django_capture_on_commit_callbacks(execute=True):
        image, op = operations.image_create(
            account=account, user=api_user, instance_id="inst1", name="slow", description=None
        )
    assert op.status == OP.POLLING
    # when
    cancelled = operation_cancel(operation=op, user=operator)
    # then: a final state at once, on the operation and its image (the API shows it)
    assert cancelled.status == OP.CANCELLED and cancelled.finished_at is not None
    assert "Cancelled by operator while POLLING" in cancelled.last_error
    image.refresh_from_db()
    assert (image.status, image.state) == ("FAILED", "FAILED")
    body = auth_client.get(f"/api/images/{image.external_id}", **XML).content.decode()
    assert "<state>FAILED</state>" in body and "<state_reason>Cancelled by operator" in body
    # and the worker, delivered the poll anyway, does nothing
    Operation.objects.filter(pk=op.pk).update(next_poll_at=timezone.now())
    tasks.image_poll_task(op.pk)
    assert Operation.objects.get(pk=op.pk).status == OP.CANCELLED
    assert Image.objects.get(pk=image.pk).status == "FAILED"


def test_cancel_of_a_queued_delete_brings_the_image_back_and_calls_no_provider(
    auth_client, synced_account, api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        op = operations.image_delete(account=synced_account, user=api_user, external_id="img2")
    assert auth_client.get("/api/images/img2", **XML).status_code == 404
    operation_cancel(operation=op, user=operator)
    tasks.image_delete_task(op.pk)  # the queued task arrives after the cancel
    # the provider still has it, and so does the API, with the reason
    assert services.build_driver(account=synced_account).get_image("img2") is not None
    body = auth_client.get("/api/images/img2", **XML).content.decode()
    assert "<state_reason>Delete cancelled by operator</state_reason>" in body
    assert Operation.objects.get(pk=op.pk).status == OP.CANCELLED


def test_a_worker_mid_attempt_cannot_overwrite_a_cancel(
    synced_account, api_user, operator, enqueued, django_capture_on_commit_callbacks
):
    # given: the worker has claimed the delete (between its claim and its call)
    with django_capture_on_commit_callbacks(execute=True):
        op = operations.image_delete(account=synced_account, user=api_user, external_id="img2")
    claimed = operations.operation_claim(operation_id=op.pk)
    assert claimed is not None
    # when: the operator cancels, then the worker goes on with its attempt
    operation_cancel(operation=op, user=operator)
    operations.image_delete_run(op=claimed)
    # then: it stopped before the provider call, and the cancel stands
    assert services.build_driver(account=synced_account).get_image("img2") is not None
    assert Operation.objects.get(pk=op.pk).status == OP.CANCELLED
    assert Image.objects.get(external_id="img2").deleted_at is None


def test_finished_operations_cannot_be_cancelled(synced_account, api_user, operator, enqueued):
    op = Operation.objects.create(
        account=synced_account, kind=Operation.Kind.DELETE_IMAGE, status=OP.SUCCEEDED, deadline=timezone.now()
    )
    with pytest.raises(OperationStateError, match="only running ones can be cancelled"):
        operation_cancel(operation=op, user=operator)
