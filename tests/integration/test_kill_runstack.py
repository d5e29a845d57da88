"""``manage.py runstack`` (what ``make run`` starts) keeps background work going:
after kill -9 of a worker child, of the worker's main process, and when the
worker stops working while still alive, deletes sent to the API complete."""

from __future__ import annotations

import base64
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from django.conf import settings

from images import sync
from images.models import Operation
from tests.conftest import make_account

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
AUTH = "Basic " + base64.b64encode(b"mockuser:mockpassword").decode()


def wait_until(predicate, timeout: float, what: str, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{log()[-4000:]}" if log else ""))


def free_port() -> int:
    for port in range(18700, 18800):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 18700-18799")


def delete(base: str, image_id: str) -> int:
    request = urllib.request.Request(
        f"{base}/api/images/{image_id}?format=xml", method="DELETE", headers={"Authorization": AUTH}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def operations_worker(runstack: subprocess.Popen) -> psutil.Process | None:
    for child in psutil.Process(runstack.pid).children():
        try:
            if "operations@%h" in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def test_runstack_restarts_dead_and_stuck_workers(stack, api_user, tmp_path):
    account = make_account("cloud", users=[api_user], is_default=True)
    sync.catalog_sync(account=account)
    port = free_port()
    log_path = tmp_path / "runstack.log"
    env = {
        **stack.env,
        "CELERY_BROKER_URL": "filesystem://",
        "DELTAWEB_DATA_DIR": str(tmp_path / "data"),
        "DELTAWEB_HEALTH_INTERVAL": "2",
        "DELTAWEB_HEALTH_GRACE": "5",
        "DELTAWEB_HEALTH_FAILURES": "2",
    }
    with open(log_path, "ab") as log_file:
        runstack = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--port", str(port)],
            env=env,
            cwd=settings.BASE_DIR,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def log() -> str:
        return log_path.read_text(errors="replace")

    def deleted(image_id: str, what: str) -> None:
        done = Operation.objects.filter(kind=Operation.Kind.DELETE_IMAGE, status=Operation.Status.SUCCEEDED)
        before = done.count()
        assert delete(base, image_id) == 204
        wait_until(
            lambda: done.count() == before + 1,
            60,
            f"the delete of {image_id} {what}",
            log,
        )

    family: set[int] = set()
    try:
        wait_until(lambda: log().count(" ready.") >= 2, 60, "the workers", log)
        wait_until(lambda: "Booting worker" in log(), 30, "the API", log)
        first = wait_until(lambda: operations_worker(runstack), 10, "the operations worker")
        family.update(p.pid for p in psutil.Process(runstack.pid).children(recursive=True))

        # a child of the operations worker killed -9: the same worker goes on
        for child in first.children():
            child.send_signal(signal.SIGKILL)
        deleted("img1", "after a child was killed")

        # the worker's main process killed -9: runstack starts a new one
        first.send_signal(signal.SIGKILL)
        wait_until(lambda: "worker exited with -9" in log(), 30, "runstack to notice", log)
        second = wait_until(
            lambda: (w := operations_worker(runstack)) and w.pid != first.pid and w, 30, "a new worker", log
        )
        family.update(p.pid for p in psutil.Process(runstack.pid).children(recursive=True))
        deleted("img2", "after the worker was killed")

        # the new worker alive but doing nothing (stopped): found unhealthy, replaced
        wait_until(lambda: " ready." in log().split("worker started again", 1)[1], 60, "it to be ready", log)
        second.send_signal(signal.SIGSTOP)
        wait_until(lambda: "worker unhealthy" in log(), 60, "runstack to find the worker stuck", log)
        deleted("img3", "after the stuck worker was replaced")
        assert operations_worker(runstack).pid not in (first.pid, second.pid)
        assert runstack.poll() is None
    finally:
        family.update(p.pid for p in psutil.Process(runstack.pid).children(recursive=True))
        runstack.send_signal(signal.SIGTERM)
        try:
            runstack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            runstack.kill()
        for pid in family:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
