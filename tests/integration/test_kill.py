"""kill -9 of a worker's child or of its main process, on the embedded broker
and on Redis, with a create in flight: the operation still completes, once.

Everything runs in real processes with the chosen broker (API in gunicorn,
worker, beat with its reaper); the test only reads the database. Redis is the
suite's broker when it runs on Redis, else DELTAWEB_TEST_REDIS_URL (default
redis://127.0.0.1:6379/15); the Redis cases skip when no Redis answers there.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from deltaweb.settings.base import broker_transport_options
from images import services, sync
from images.models import Operation
from providers.base import ImageState
from tests.conftest import make_account, wait_until
from tests.integration.conftest import Process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
AUTH = "Basic " + base64.b64encode(b"mockuser:mockpassword").decode()


def redis_url() -> str:
    if settings.CELERY_BROKER_URL.startswith("redis"):
        return settings.CELERY_BROKER_URL
    return os.environ.get("DELTAWEB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["embedded", "redis"])
def broker(request, stack, tmp_path):
    """Point every process of ``stack`` at one broker, emptied before and after."""
    if request.param == "embedded":
        # A data folder of its own: the filesystem broker's spool lives there.
        data = tmp_path / "data"
        stack.env.update(CELERY_BROKER_URL="filesystem://", DELTAWEB_DATA_DIR=str(data))
        options = broker_transport_options("filesystem://", data / f"test-broker-{settings.TEST_RUN}")
        for folder in options.values():
            Path(folder).mkdir(parents=True, exist_ok=True)
        yield request.param
        return
    import redis

    url = redis_url()
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    client.flushdb()
    stack.env["CELERY_BROKER_URL"] = url
    yield request.param
    client.flushdb()


def post(base: str, path: str, data: bytes) -> int:
    request = urllib.request.Request(f"{base}{path}", data=data, headers={"Authorization": AUTH})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def slow_create(stack, api_user, name: str) -> tuple[Process, Operation]:
    """A mock cloud that takes 6 s to make an image (the worker polls it), a
    worker, beat and the API; a create sent, and its polling under way."""
    params = {"profile": "ec2", "create_delay": 6}
    account = make_account("cloud", users=[api_user], is_default=True, params=params)
    sync.catalog_sync(account=account)
    stack.beat()
    worker = stack.worker(concurrency=2)
    base = stack.web()
    assert post(base, "/api/images?format=xml", f"instance_id=inst1&name={name}".encode()) == 201
    wait_until(lambda: Operation.objects.filter(attempts__gte=2).exists(), 30, "polling to start")
    return worker, Operation.objects.get()


def assert_completed_once(api_user, op: Operation, name: str) -> None:
    wait_until(lambda: not Operation.objects.get(pk=op.pk).active, 60, "the operation to finish")
    assert Operation.objects.get(pk=op.pk).status == Operation.Status.SUCCEEDED
    assert Operation.objects.count() == 1
    account = op.account
    images = [image for image in services.build_driver(account=account).list_images() if image.name == name]
    assert len(images) == 1 and images[0].state == ImageState.AVAILABLE


def children_of(worker: Process) -> list[int]:
    return [child.pid for child in psutil.Process(worker.proc.pid).children()]


def test_kill_9_of_every_worker_child_loses_nothing(broker, stack, api_user):
    # given: a create being polled by a worker with two children
    worker, op = slow_create(stack, api_user, f"child-{broker}")
    # when: each child is killed -9 in turn (idle or running a poll; on the
    # embedded broker one of them holds the pool's shared pipe lock)
    killed = children_of(worker)
    assert len(killed) == 2
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    # then: the same worker (its main process never died) carries the create
    # to the end, with new children, and only one image is made
    assert worker.proc.poll() is None
    assert_completed_once(api_user, op, f"child-{broker}")
    assert not set(killed) & set(children_of(worker))


def test_kill_9_of_the_worker_main_process_loses_nothing(broker, stack, api_user):
    # given: a create being polled
    worker, op = slow_create(stack, api_user, f"parent-{broker}")
    # when: the worker's main process is killed -9 (its prefetched and
    # scheduled messages die with it), and a new worker is started, as
    # runstack or compose's restart policy does
    orphans = children_of(worker)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    for pid in orphans:  # what runstack does when it restarts a worker: its whole group goes
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stack.worker(concurrency=2)
    # then: the create completes, once (when the killed process held its next
    # poll, beat's reaper finds the operation in the database and re-enqueues it)
    assert_completed_once(api_user, op, f"parent-{broker}")


def test_health_check_reports_a_working_and_a_stopped_worker(stack, api_user, tmp_path):
    """``manage.py worker_health`` answers from a ping through the pool."""
    stack.env["DELTAWEB_HEALTH_DIR"] = str(tmp_path / "health")
    worker = stack.worker(concurrency=1, queues="operations")
    node = f"{worker.name}@{socket.gethostname()}"
    wait_until(lambda: list(Path(tmp_path / "health").glob("worker-*.json")), 10, "a heartbeat")
    assert "ping answered" in stack.manage("worker_health", "--node", node, "--timeout", "20")
    # when: the worker stops working (SIGSTOP: alive, but doing nothing)
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", "worker_health", "--node", node, "--timeout", "3"],
            env=stack.env,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    assert done.returncode == 1 and "no child answered a ping" in done.stderr


def _hold_forever(lock) -> None:
    lock.acquire()
    time.sleep(3600)


def test_a_pool_lock_held_by_a_killed_process_is_handed_over():
    """The lock an idle pool child holds while it waits for work (deltaweb/celery.py)."""
    import billiard

    from deltaweb.celery import OwnedLock

    ctx = billiard.get_context("fork")
    lock = OwnedLock(ctx)
    holder = ctx.Process(target=_hold_forever, args=(lock,))
    holder.start()
    try:
        wait_until(lambda: lock._owner.value == holder.pid, 10, "the child to take the lock")
        assert not lock.acquire(timeout=1.0)  # a live holder keeps it
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    assert lock.acquire(timeout=10)  # its death releases it
    lock.release()
