"""Races (issue 8) against the deployed shape: gunicorn and a real Celery
worker carrying the operations, 30 clients released at once over HTTP.

Same-named creates on a provider that returns no id (FGCP-like), while the
worker makes the provider call and adopts the image: one 201, every other
request 409, one image. Deletes of one image: one 204 and one operation.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import pytest

from images import operations, services, sync
from images.models import Image, Operation
from tests.conftest import basic, make_account, wait_until
from tests.integration.conftest import BIN, Process, Stack, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
THREADS = 30
HEADERS = {"Accept": "application/xml", "Authorization": basic()}


def web(stack: Stack, workers: int = 6) -> str:
    """The API in gunicorn with enough processes for the requests to overlap."""
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-c", "deltaweb/gunicorn_conf.py", "-b", f"127.0.0.1:{port}"]
    argv += ["--workers", str(workers), "deltaweb.wsgi"]
    proc = Process("web", argv, stack.env, stack.tmp / "web.log")
    stack.processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.output().count("Booting worker") >= workers, 60, "the web workers")
    wait_until(lambda: request("GET", f"{base}/api") == "200", 30, "the API")
    return base


def request(method: str, url: str, data: dict | None = None) -> str:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method, headers=HEADERS)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)


def together(count: int, call) -> Counter:
    barrier = threading.Barrier(count)
    outcomes = ["no outcome"] * count

    def run(i: int) -> None:
        try:
            barrier.wait(60)
            outcomes[i] = call()
        except Exception as exc:  # noqa: BLE001  (the outcome under test)
            outcomes[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return Counter(outcomes)


def test_same_named_creates_on_a_no_id_provider_with_the_worker_running(stack, api_user):
    # given: an FGCP-like account (no id returned), a worker, the API; the first create stays
    # in flight through the burst (once it is done, the same name may be created again there)
    account = make_account(
        "cloud", users=[api_user], is_default=True, params={"profile": "fgcp", "create_delay": 3.0}
    )
    sync.catalog_sync(account=account)
    services.build_driver(account=account).instance_action("inst1", "stop")
    operations.instance_refresh(account=account, external_id="inst1")
    stack.worker()
    base = web(stack)

    # when: 30 clients create the same name at once
    outcomes = together(
        THREADS, lambda: request("POST", f"{base}/api/images", {"instance_id": "inst1", "name": "twin"})
    )

    # then: one is created, the others are refused; the worker finishes the one
    assert outcomes == Counter({"201": 1, "409": THREADS - 1})
    op = Operation.objects.get(kind=Operation.Kind.CREATE_IMAGE)
    wait_until(lambda: not Operation.objects.get(pk=op.pk).active, 60, "the create to finish")
    op.refresh_from_db()
    assert op.status == Operation.Status.SUCCEEDED, op.last_error
    visible = Image.objects.filter(account=account, name="twin", missing_since=None, deleted_at=None)
    assert [i.external_id for i in visible] == [op.external_id]


def test_concurrent_deletes_with_the_worker_running(stack, api_user):
    account = make_account("cloud", users=[api_user], is_default=True)
    sync.catalog_sync(account=account)
    stack.worker()
    base = web(stack)

    outcomes = together(THREADS, lambda: request("DELETE", f"{base}/api/images/img1"))

    assert outcomes == Counter({"204": 1, "404": THREADS - 1})
    op = Operation.objects.get(kind=Operation.Kind.DELETE_IMAGE)
    wait_until(lambda: not Operation.objects.get(pk=op.pk).active, 60, "the delete to finish")
    assert Operation.objects.get(pk=op.pk).status == Operation.Status.SUCCEEDED
    assert services.build_driver(account=account).get_image("img1") is None
