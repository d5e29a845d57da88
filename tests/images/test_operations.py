"""Image create/delete as operations: validation, 201s, polling to a terminal
state, FGCP-style no-id creates, tombstones, idempotency and the reaper.

Task bodies run here in-process (one attempt per call); tests/integration
runs them in a real worker on a real broker.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from images import operations, services, sync, tasks
from images.models import Image, Operation
from providers.registry import DRIVERS, get_driver
from tests.conftest import make_account
from tests.images.test_golden import golden

pytestmark = pytest.mark.django_db
OP = Operation.Status
XML = {"HTTP_ACCEPT": "application/xml"}
CONTROL = "Parameter 'name' contains control characters"


@pytest.fixture
def enqueued(monkeypatch, django_capture_on_commit_callbacks):
    """What the services send to the broker (recorded, not sent)."""
    sent: list[tuple[str, tuple, float]] = []
    for name in ("image_create_task", "image_poll_task", "image_delete_task"):
        task = getattr(tasks, name)
        monkeypatch.setattr(
            task,
            "apply_async",
            lambda args, countdown=0, _name=name: sent.append((_name, tuple(args), countdown)),
        )
    return sent


def account_with(api_user, create_timeout=None, **params):
    account = make_account("cloud", users=[api_user], is_default=True, params=params)
    if create_timeout is not None:
        account.create_timeout = create_timeout
        account.save(update_fields=["create_timeout"])
    sync.catalog_sync(account=account)
    account.refresh_from_db()
    return account


def post(client, django_capture_on_commit_callbacks, **data):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post("/api/images", data, **XML)


def drive(op_id: int, rounds: int = 50) -> Operation:
    """Run the operation's next task until it finishes (skipping the wait)."""
    for _ in range(rounds):
        op = Operation.objects.get(pk=op_id)
        if not op.active:
            return op
        Operation.objects.filter(pk=op_id).update(next_poll_at=timezone.now())
        getattr(tasks, operations._task_for(op))(op_id)
        time.sleep(0.05)
    return Operation.objects.get(pk=op_id)


def fgcp_create(client, api_user, callbacks, name, create_delay):
    """An FGCP-like cloud (stopped-only, no ids) and a create from its stopped inst1."""
    account = account_with(api_user, profile="fgcp", create_delay=create_delay)
    driver = services.build_driver(account=account)
    driver.instance_action("inst1", "stop")
    post(client, callbacks, instance_id="inst1", name=name)
    return account, driver, Operation.objects.get()


def image_xml(client, image_id):
    return client.get(f"/api/images/{image_id}", **XML)


# -- synchronous creates (the provider returns the id) ---------------------------------


def test_deltacloud_create_matches_the_captured_201(
    auth_client, synced_account, enqueued, django_capture_on_commit_callbacks
):
    response = post(
        auth_client,
        django_capture_on_commit_callbacks,
        instance_id="inst1",
        name="my-image",
        description="my description",
    )
    assert response.status_code == 201
    assert response["Location"] == "http://testserver/api/images/my-image"
    assert response.content.decode() == golden("image_create_201.xml")
    op = Operation.objects.get()
    assert (op.status, op.external_id) == (OP.SUCCEEDED, "my-image")
    assert enqueued == []  # nothing left to wait for


def test_pending_create_is_polled_to_available(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    account_with(api_user, profile="ec2", create_delay=0.4)
    response = post(auth_client, django_capture_on_commit_callbacks, instance_id="inst1", name="web-v1")
    assert response.status_code == 201
    image_id = response["Location"].rsplit("/", 1)[1]
    assert image_id.startswith("ami-")
    assert "<state>pending</state>" in response.content.decode()
    op = Operation.objects.get()
    assert op.status == OP.POLLING
    ((task, args, countdown),) = enqueued
    assert (task, args) == ("image_poll_task", (op.pk,)) and 0 < countdown < 60

    time.sleep(0.45)
    assert drive(op.pk).status == OP.SUCCEEDED
    body = image_xml(auth_client, image_id).content.decode()
    assert "<state>available</state>" in body and "<name>web-v1</name>" in body


def test_failing_create_ends_failed_with_the_reason(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    account_with(
        api_user, profile="ec2", create_delay=0.1, failure_rate=1.0, failure_reason="Snapshot of vol-1 failed"
    )
    response = post(auth_client, django_capture_on_commit_callbacks, instance_id="inst1", name="bad")
    image_id = response["Location"].rsplit("/", 1)[1]
    time.sleep(0.15)
    op = drive(Operation.objects.get().pk)
    assert (op.status, op.last_error) == (OP.FAILED, "Snapshot of vol-1 failed")
    body = image_xml(auth_client, image_id).content.decode()
    assert "<state>failed</state>" in body
    assert "<state_reason>Snapshot of vol-1 failed</state_reason>" in body
    json = auth_client.get(f"/api/images/{image_id}?format=json").json()["image"]
    assert json["state_reason"] == "Snapshot of vol-1 failed"


def test_deadline_fails_the_operation(auth_client, api_user, enqueued, django_capture_on_commit_callbacks):
    account_with(api_user, profile="ec2", create_delay=1000, create_timeout=0.2)
    post(auth_client, django_capture_on_commit_callbacks, instance_id="inst1", name="slow")
    time.sleep(0.25)
    op = drive(Operation.objects.get().pk)
    assert op.status == OP.FAILED
    assert op.last_error.startswith("Gave up after the deadline")
    assert Image.objects.get(name="slow").status == "FAILED"


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"name": "x"}, 400, "Required parameter 'instance_id' not found"),
        ({"instance_id": "", "name": "x"}, 400, "Required parameter 'instance_id' not found"),
        ({"instance_id": "inst1", "name": "n" * 129}, 400, "Parameter 'name' is longer than 128 characters"),
        (
            {"instance_id": "inst1", "name": "bad\x07name"},
            400,
            "Parameter 'name' contains control characters",
        ),
        ({"instance_id": "inst1", "name": "two\nlines"}, 400, "Parameter 'name' contains control characters"),
        (
            {"instance_id": "inst1", "name": "ok", "description": "d" * 1025},
            400,
            "Parameter 'description' is longer than 1024 characters",
        ),
        ({"instance_id": "nope", "name": "x"}, 404, "Instance nope not found"),
        ({"instance_id": "inst3", "name": "x"}, 409, "Instance inst3 does not support image creation"),
        ({"instance_id": "inst1", "name": "img1"}, 409, "An image named 'img1' already exists"),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(
    auth_client, synced_account, enqueued, django_capture_on_commit_callbacks, data, status, message
):
    before = set(Image.objects.values_list("external_id", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post("/api/images?format=json", data)
    assert response.status_code == status
    assert response.json()["message"] == message
    assert set(Image.objects.values_list("external_id", flat=True)) == before
    assert not Operation.objects.exists() and enqueued == []
    driver = services.build_driver(account=synced_account)
    assert sorted(i.id for i in driver.list_images()) == sorted(before)


@pytest.mark.parametrize(
    ("profile", "instance", "reason"),
    [
        ("ec2", "inst2", "Instance inst2 is instance-store backed; only EBS-backed instances can be imaged"),
        ("rhevm", "inst1", "Instance inst1 is RUNNING; it must be STOPPED to create an image"),
        ("fgcp", "inst1", "Instance inst1 is RUNNING; it must be STOPPED to create an image"),
        ("vsphere", "inst1", "Instance inst1 is RUNNING; it must be STOPPED to create an image"),
    ],
)
def test_instances_the_cloud_cannot_image_are_409(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks, profile, instance, reason
):
    account_with(api_user, profile=profile)
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post("/api/images?format=json", {"instance_id": instance, "name": "n1"})
    assert response.status_code == 409
    assert response.json()["message"] == reason
    assert not Operation.objects.exists()


def test_instance_state_is_checked_with_the_provider_not_a_stale_cache(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    account = account_with(api_user, profile="rhevm", create_delay=0)
    # the cache still says RUNNING; the cloud says STOPPED
    services.build_driver(account=account).instance_action("inst1", "stop")
    response = post(auth_client, django_capture_on_commit_callbacks, instance_id="inst1", name="tpl")
    assert response.status_code == 201


def test_driver_without_create_is_501(
    auth_client, api_user, monkeypatch, enqueued, django_capture_on_commit_callbacks
):
    monkeypatch.setitem(DRIVERS, "readonly", "tests.fakes.ReadOnlyMockDriver")
    get_driver.cache_clear()
    make_account("ro", users=[api_user], driver="readonly", is_default=True)
    with django_capture_on_commit_callbacks(execute=True):
        create = auth_client.post("/api/images?format=json", {"instance_id": "inst1", "name": "x"})
        delete = auth_client.delete("/api/images/img1?format=json")
    get_driver.cache_clear()
    assert (create.status_code, delete.status_code) == (501, 501)
    assert create.json()["error"] == "Deltacloud::Exceptions::NotSupported"
    # and the documents advertise neither action
    listing = auth_client.get("/api/images", **XML).content.decode()
    assert "destroy_image" not in listing
    instance = auth_client.get("/api/instances/inst1", **XML).content.decode()
    assert "create_image" not in instance


def test_parameters_from_query_string_and_matrix(
    auth_client, synced_account, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        by_query = auth_client.post("/api/images?instance_id=inst1&name=q1", **XML)
        by_matrix = auth_client.post("/api/images;instance_id=inst2", {"name": "m1"}, **XML)
        by_json = auth_client.post(
            "/api/images", {"instance_id": "inst0", "name": "j1"}, format="json", **XML
        )
    assert [r.status_code for r in (by_query, by_matrix, by_json)] == [201, 201, 201]
    assert {op.instance_id for op in Operation.objects.all()} == {"inst0", "inst1", "inst2"}


def test_broker_outage_does_not_fail_the_request(
    auth_client, api_user, monkeypatch, django_capture_on_commit_callbacks
):
    account_with(api_user, profile="ec2", create_delay=5)

    def down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.image_poll_task, "apply_async", down)
    response = post(auth_client, django_capture_on_commit_callbacks, instance_id="inst1", name="web")
    assert response.status_code == 201
    op = Operation.objects.get()
    assert op.status == OP.POLLING and op.next_poll_at is not None  # the reaper will find it


# -- FGCP: no id from the provider ------------------------------------------------------


def test_no_id_create_answers_with_a_provisional_id_and_finds_the_image(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    account = account_with(api_user, profile="fgcp", create_delay=0.2)
    driver = services.build_driver(account=account)
    driver.instance_action("inst1", "stop")
    driver.instance_action("inst2", "stop")
    # an older image with the same name exists: it must not be adopted
    driver.create_image(instance_id="inst2", name="nightly")
    time.sleep(0.25)
    sync.catalog_sync(account=account)
    (old_id,) = [i.id for i in driver.list_images() if i.name == "nightly"]

    response = post(auth_client, django_capture_on_commit_callbacks, instance_id="inst1", name="nightly")
    assert response.status_code == 201
    assert response["Location"] == "http://testserver/api/images/PENDING-nightly"
    assert "<state>PENDING</state>" in response.content.decode()
    op = Operation.objects.get()
    assert (op.status, op.provisional_id) == (OP.QUEUED, "PENDING-nightly")
    assert enqueued[0][:2] == ("image_create_task", (op.pk,))

    # the worker makes the call, and finds nothing until registration ends
    tasks.image_create_task(op.pk)
    op.refresh_from_db()
    assert op.status == OP.POLLING and op.external_id == "" and old_id in op.preexisting_ids
    # a sync meanwhile does not lose the placeholder
    sync.catalog_sync(account=account)
    assert image_xml(auth_client, "PENDING-nightly").status_code == 200

    time.sleep(0.25)
    op = drive(op.pk)
    assert op.status == OP.SUCCEEDED
    assert op.external_id.startswith("IMG_") and op.external_id != old_id

    # the provisional URL still works and shows the real image
    shown = image_xml(auth_client, "PENDING-nightly")
    assert shown.status_code == 200
    assert f"id='{op.external_id}'" in shown.content.decode()
    assert shown["Content-Location"] == f"http://testserver/api/images/{op.external_id}"
    listing = auth_client.get("/api/images", **XML).content.decode()
    assert f"id='{op.external_id}'" in listing and f"id='{old_id}'" in listing
    assert "PENDING-nightly" not in listing


def test_create_task_delivered_twice_creates_one_image(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    _account, driver, op = fgcp_create(
        auth_client, api_user, django_capture_on_commit_callbacks, "once", create_delay=0
    )
    tasks.image_create_task(op.pk)
    tasks.image_create_task(op.pk)  # a duplicate delivery: not due, nothing happens
    Operation.objects.filter(pk=op.pk).update(next_poll_at=timezone.now(), status=OP.CALLING)
    tasks.image_create_task(op.pk)  # a redelivery after a crash mid-call: looks, never re-creates
    assert len([i for i in driver.list_images() if i.name == "once"]) == 1
    assert drive(op.pk).status == OP.SUCCEEDED


def test_a_claimed_operation_is_left_alone(synced_account, api_user):
    op = Operation.objects.create(
        account=synced_account,
        kind=Operation.Kind.CREATE_IMAGE,
        status=OP.POLLING,
        external_id="img1",
        next_poll_at=timezone.now(),
        claimed_until=timezone.now() + timedelta(seconds=30),
        deadline=timezone.now() + timedelta(hours=1),
    )
    tasks.image_poll_task(op.pk)
    op.refresh_from_db()
    assert (op.status, op.attempts) == (OP.POLLING, 0)
    Operation.objects.filter(pk=op.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    with_claim_expired = drive(op.pk)
    assert with_claim_expired.status == OP.SUCCEEDED and with_claim_expired.attempts == 1


# -- delete ------------------------------------------------------------------------------


def test_delete_tombstones_then_the_worker_deletes(
    auth_client, synced_account, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.delete("/api/images/img2", **XML)
    assert response.status_code == 204 and response.content == b""
    assert "Content-Type" not in response
    # gone from the API at once, kept in the database until the provider confirms
    assert image_xml(auth_client, "img2").status_code == 404
    assert "id='img2'" not in auth_client.get("/api/images", **XML).content.decode()
    assert Image.objects.filter(external_id="img2", deleted_at__isnull=False).exists()
    op = Operation.objects.get()
    assert enqueued == [("image_delete_task", (op.pk,), 0)]
    assert drive(op.pk).status == OP.SUCCEEDED
    assert services.build_driver(account=synced_account).get_image("img2") is None
    before = Image.objects.get(external_id="img2").changed_version
    sync.catalog_sync(account=synced_account)
    # the provider confirmed: kept as vanished (the delta feed reports it) until the retention ends
    gone = Image.objects.get(external_id="img2")
    assert gone.missing_since is not None and gone.changed_version > before


def test_delete_of_unknown_or_deleted_image_is_404(
    auth_client, synced_account, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_client.delete("/api/images/nope", **XML).status_code == 404
        assert auth_client.delete("/api/images/img1", **XML).status_code == 204
        assert auth_client.delete("/api/images/img1", **XML).status_code == 404
    assert Operation.objects.count() == 1


def test_provider_refusal_surfaces_on_the_operation_and_the_image(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    account_with(api_user, profile="rhevm")
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_client.delete("/api/images/img1", **XML).status_code == 204
    op = drive(Operation.objects.get().pk)
    expected = (
        "Cannot delete Template. Template is being used by the following VMs: "
        "AnotherInstance,Mock Instance With Profile Change."
    )
    assert (op.status, op.last_error) == (OP.FAILED, expected)
    body = image_xml(auth_client, "img1").content.decode()
    assert f"<state_reason>Delete failed: {expected}</state_reason>" in body


def test_html_delete_redirects_and_method_override(
    auth_client, synced_account, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        html = auth_client.delete("/api/images/img1", HTTP_ACCEPT="text/html")
        override = auth_client.post("/api/images/img2", {"_method": "delete"}, **XML)
    assert (html.status_code, html["Location"]) == (302, "http://testserver/api/images")
    assert override.status_code == 204
    assert Operation.objects.filter(kind=Operation.Kind.DELETE_IMAGE).count() == 2


# -- reaper and fast sync ----------------------------------------------------------------------


def test_reaper_re_enqueues_only_overdue_operations(
    synced_account, enqueued, django_capture_on_commit_callbacks, settings
):
    now = timezone.now()
    overdue = Operation.objects.create(
        account=synced_account,
        kind=Operation.Kind.CREATE_IMAGE,
        status=OP.POLLING,
        external_id="img1",
        next_poll_at=now - timedelta(minutes=5),
        deadline=now + timedelta(hours=1),
    )
    Operation.objects.create(
        account=synced_account,
        kind=Operation.Kind.CREATE_IMAGE,
        status=OP.POLLING,
        external_id="img2",
        next_poll_at=now + timedelta(seconds=5),
        deadline=now + timedelta(hours=1),
    )
    Operation.objects.create(
        account=synced_account,
        kind=Operation.Kind.DELETE_IMAGE,
        status=OP.SUCCEEDED,
        external_id="img3",
        next_poll_at=now - timedelta(minutes=5),
        deadline=now,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert operations.operations_reap() == 1
        assert operations.operations_reap() == 0  # just re-enqueued: not overdue again yet
    assert enqueued == [("image_poll_task", (overdue.pk,), 0)]


def test_after_a_create_the_account_syncs_sooner(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks, settings
):
    account = account_with(api_user, profile="ec2", create_delay=5)
    post(auth_client, django_capture_on_commit_callbacks, instance_id="inst1", name="soon")
    account.refresh_from_db()
    assert account.fast_sync_until > timezone.now() + timedelta(minutes=5)
    assert account.next_sync_at <= timezone.now() + timedelta(seconds=settings.DELTAWEB_FAST_SYNC_INTERVAL)
    sync.catalog_sync(account=account)
    account.refresh_from_db()
    assert account.next_sync_at <= timezone.now() + timedelta(seconds=settings.DELTAWEB_FAST_SYNC_INTERVAL)


def test_a_duplicate_create_task_after_the_call_only_polls(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    _account, driver, op = fgcp_create(
        auth_client, api_user, django_capture_on_commit_callbacks, "dup", create_delay=5
    )
    tasks.image_create_task(op.pk)  # the call happens: POLLING now
    Operation.objects.filter(pk=op.pk).update(next_poll_at=timezone.now())
    tasks.image_create_task(op.pk)  # a duplicate delivered when the poll is due
    op.refresh_from_db()
    assert op.status == OP.POLLING and op.attempts == 2
    on_disk = [p for p in (driver.store.root / "images").glob("*.json")]
    assert len(on_disk) == 4  # the seed images and exactly one new one


def test_adoption_merges_into_a_row_a_sync_inserted_meanwhile(
    auth_client, api_user, enqueued, django_capture_on_commit_callbacks
):
    account, _driver, op = fgcp_create(
        auth_client, api_user, django_capture_on_commit_callbacks, "raced", create_delay=0
    )
    tasks.image_create_task(op.pk)  # the provider has it now...
    sync.catalog_sync(account=account)  # ...and a sync lists it before the poller adopts it
    op = drive(op.pk)
    assert op.status == OP.SUCCEEDED
    rows = Image.objects.filter(account=account, name="raced", deleted_at__isnull=True)
    assert [r.external_id for r in rows] == [op.external_id]  # one row, the real id
    # the placeholder stays as a tombstone until purged, so the delta feed reports it gone
    gone = Image.objects.filter(account=account, name="raced", deleted_at__isnull=False)
    assert [(r.external_id, r.missing_since is not None) for r in gone] == [("PENDING-raced", True)]
    assert op.image_id == rows[0].pk
    assert image_xml(auth_client, "PENDING-raced").status_code == 200
