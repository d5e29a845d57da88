"""Creates and deletes carried to the end by a real Celery worker process,
through worker crashes, a flushed broker and duplicate deliveries."""

from __future__ import annotations

import time

import pytest

from images import search, services, sync, tasks
from images.models import Image, Operation
from tests.conftest import make_account, wait_until
from tests.integration.conftest import flush_broker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
XML = {"HTTP_ACCEPT": "application/xml"}


def account_with(api_user, **params):
    account = make_account("cloud", users=[api_user], is_default=True, params=params)
    sync.catalog_sync(account=account)
    return account


def state_of(client, image_id: str) -> str:
    body = client.get(f"/api/images/{image_id}", **XML).content.decode()
    return body.split("<state>", 1)[1].split("</state>", 1)[0] if "<state>" in body else ""


def test_create_reaches_available_after_the_provider_delay(stack, auth_client, api_user):
    # given: a cloud that takes 5 s to make an image, and a worker
    account_with(api_user, profile="ec2", create_delay=5)
    stack.worker()
    # when
    started = time.monotonic()
    response = auth_client.post("/api/images", {"instance_id": "inst1", "name": "web-v1"}, **XML)
    # then: 201 while the image is still pending (the request did not wait for the
    # provider), and available only once the provider's delay has passed
    assert response.status_code == 201
    image_id = response["Location"].rsplit("/", 1)[1]
    assert "<state>pending</state>" in response.content.decode()
    wait_until(lambda: state_of(auth_client, image_id) == "available", 15, "available")
    assert time.monotonic() - started >= 5
    # a sync may show the image available before the operation's next poll closes it
    wait_until(lambda: Operation.objects.get().status == Operation.Status.SUCCEEDED, 10, "succeeded")


def test_no_id_create_through_the_provisional_id(stack, auth_client, api_user):
    account = account_with(api_user, profile="fgcp", create_delay=5)
    services.build_driver(account=account).instance_action("inst1", "stop")
    stack.worker()
    started = time.monotonic()
    response = auth_client.post("/api/images", {"instance_id": "inst1", "name": "nightly"}, **XML)
    assert response.status_code == 201
    assert response["Location"].endswith("/api/images/PENDING-nightly")
    assert state_of(auth_client, "PENDING-nightly") == "PENDING"
    wait_until(lambda: state_of(auth_client, "PENDING-nightly") == "AVAILABLE", 15, "available")
    assert time.monotonic() - started >= 5
    real_id = Operation.objects.get().external_id
    assert real_id.startswith("IMG_")
    listing = auth_client.get("/api/images", **XML).content.decode()
    assert f"id='{real_id}'" in listing and "PENDING-nightly" not in listing


def test_failing_create_ends_failed_with_the_reason(stack, auth_client, api_user):
    account_with(
        api_user, profile="ec2", create_delay=1, failure_rate=1.0, failure_reason="Snapshot of vol-0 failed"
    )
    stack.worker()
    response = auth_client.post("/api/images", {"instance_id": "inst1", "name": "broken"}, **XML)
    image_id = response["Location"].rsplit("/", 1)[1]
    wait_until(lambda: state_of(auth_client, image_id) == "failed", 15, "failed")
    body = auth_client.get(f"/api/images/{image_id}", **XML).content.decode()
    assert "<state_reason>Snapshot of vol-0 failed</state_reason>" in body
    op = Operation.objects.get()
    assert (op.status, op.last_error) == (Operation.Status.FAILED, "Snapshot of vol-0 failed")


def test_killed_worker_loses_nothing(stack, auth_client, api_user):
    # given: polling under way in a worker that is then killed -9
    account_with(api_user, profile="ec2", create_delay=6)
    stack.beat()  # runs the reaper
    first = stack.worker()
    response = auth_client.post("/api/images", {"instance_id": "inst1", "name": "survivor"}, **XML)
    image_id = response["Location"].rsplit("/", 1)[1]
    wait_until(lambda: Operation.objects.get().attempts >= 2, 10, "polling to start")
    first.kill9()
    assert Operation.objects.get().active
    # when: another worker comes up
    stack.worker()
    # then: it finishes the operation
    wait_until(lambda: state_of(auth_client, image_id) == "available", 30, "available after the crash")
    assert Operation.objects.get().status == Operation.Status.SUCCEEDED


def test_flushed_broker_is_recovered_by_the_reaper(stack, auth_client, api_user):
    # given: polling under way
    account_with(api_user, profile="ec2", create_delay=4)
    first = stack.worker()
    beat = stack.beat()
    response = auth_client.post("/api/images", {"instance_id": "inst1", "name": "flushed"}, **XML)
    image_id = response["Location"].rsplit("/", 1)[1]
    wait_until(lambda: Operation.objects.get().attempts >= 1, 10, "polling to start")
    # when: every message is lost, the ones the worker held in memory included
    first.kill9()
    flush_broker()  # Redis FLUSHDB (the spool wiped on the filesystem broker)
    stack.worker()
    # then: the database still knows the operation, and the reaper (in beat's
    # own process, not in a worker) revives it
    wait_until(lambda: state_of(auth_client, image_id) == "available", 30, "recovery by the reaper")
    assert "reaper re-enqueued 1 overdue operation(s)" in beat.output()


def test_the_same_task_delivered_twice_creates_one_image(stack, auth_client, api_user):
    account = account_with(api_user, profile="fgcp", create_delay=1)
    driver = services.build_driver(account=account)
    driver.instance_action("inst1", "stop")
    stack.worker(concurrency=2)
    response = auth_client.post("/api/images", {"instance_id": "inst1", "name": "twice"}, **XML)
    assert response.status_code == 201
    op = Operation.objects.get()
    tasks.image_create_task.delay(op.pk)  # a duplicate of the one the request sent
    tasks.image_create_task.delay(op.pk)
    wait_until(lambda: not Operation.objects.get().active, 20, "the operation to finish")
    time.sleep(1.5)
    assert len([i for i in driver.list_images() if i.name == "twice"]) == 1
    assert Operation.objects.get().status == Operation.Status.SUCCEEDED


def test_delete_runs_in_the_worker(stack, auth_client, api_user):
    account = account_with(api_user)
    stack.worker()
    assert auth_client.delete("/api/images/img2", **XML).status_code == 204
    assert auth_client.get("/api/images/img2", **XML).status_code == 404
    wait_until(lambda: services.build_driver(account=account).get_image("img2") is None, 15, "delete")
    wait_until(lambda: not Operation.objects.get().active, 10, "the operation to finish")
    sync.catalog_sync(account=account)
    assert Image.objects.get(external_id="img2").missing_since is not None


def test_concurrent_sync_requests_run_one_listing(stack, api_user):
    account = account_with(api_user, page_size=1, list_delay=1.0)
    worker = stack.worker(concurrency=2)
    tasks.catalog_sync_task.delay(account.pk)
    tasks.catalog_sync_task.delay(account.pk)
    wait_until(lambda: "request merged" in worker.output(), 15, "the second sync to be merged")
    wait_until(lambda: worker.output().count("synced cloud") == 1, 15, "the sync to finish")
    time.sleep(1)
    assert worker.output().count("synced cloud") == 1


def test_the_search_entries_follow_a_sync_through_the_worker(stack, api_user):
    # given: a sync committed in this process, which sent its catch-up to the broker
    account = account_with(api_user)
    assert search.lagging_account_ids() == [account.pk]
    stack.worker()
    wait_until(lambda: not search.lagging_account_ids(), 15, "the worker to catch the search up")
    assert sorted(search.filter_images(Image.objects.all(), "img").values_list("external_id", flat=True)) == [
        "img1",
        "img2",
        "img3",
    ]


def test_beat_s_sweep_catches_up_what_no_message_announced(stack, api_user):
    account = account_with(api_user)
    flush_broker()  # the sync's catch-up message is lost
    services.catalog_touch(account=account)  # and an API write sends none
    stack.worker()
    stack.beat()
    wait_until(lambda: not search.lagging_account_ids(), 15, "beat's sweep to catch the search up")
