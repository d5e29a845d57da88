"""Races (issue 8): 30 clients at once on one name or one image, on real threads
and real connections (PostgreSQL with DATABASE_URL set, else the SQLite file).

Same-named creates: exactly one is created and every other one is refused
(409), on providers that answer with an id (mock, EC2-like) and on those that
do not (FGCP-like). Deletes of one image: one 204 and one operation, the
others 404. Never a 500.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client

from images import operations, services, sync
from images.models import Image, Operation
from providers.exceptions import Conflict, NotFound
from tests.conftest import basic, make_account

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 30
XML = {"HTTP_ACCEPT": "application/xml", "HTTP_AUTHORIZATION": basic()}
# Provider kinds: the mock's own (ids are the names), EC2-like (ids returned,
# names unique, creates pending) and FGCP-like (no id returned; names not unique).
PROFILES = {"mock": {}, "ec2": {"profile": "ec2"}, "fgcp": {"profile": "fgcp"}}


def together(count: int, call: Callable[[int], str]) -> Counter:
    """Run ``call`` in ``count`` threads released at the same moment; what each returned
    (or the name of the exception it raised, which a request would turn into a 500)."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = ["no outcome"] * count

    def run(i: int) -> None:
        try:
            barrier.wait(60)
            outcomes[i] = call(i)
        except Exception as exc:  # noqa: BLE001  (the outcome under test)
            outcomes[i] = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    return Counter(outcomes)


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    # the worker is not what is raced here; its tasks are recorded nowhere
    monkeypatch.setattr(operations, "_enqueue", lambda *args, **kwargs: None)


def account_for(api_user, kind: str):
    account = make_account("cloud", users=[api_user], is_default=True, params=PROFILES[kind])
    sync.catalog_sync(account=account)
    account.refresh_from_db()
    if kind == "fgcp":  # images are made of stopped servers
        services.build_driver(account=account).instance_action("inst1", "stop")
        operations.instance_refresh(account=account, external_id="inst1")
    return account


def created_named(account, name: str) -> tuple[int, int]:
    """(visible images with the name, create operations)."""
    images = Image.objects.filter(account=account, name=name, missing_since=None, deleted_at=None).count()
    return images, Operation.objects.filter(account=account, kind=Operation.Kind.CREATE_IMAGE).count()


@pytest.mark.parametrize("kind", list(PROFILES))
def test_same_named_creates_one_is_created_the_others_conflict(api_user, kind):
    account = account_for(api_user, kind)

    def create(_i: int) -> str:
        try:
            operations.image_create(
                account=account, user=api_user, instance_id="inst1", name="twin", description=None
            )
        except Conflict:
            return "conflict"
        return "created"

    outcomes = together(THREADS, create)

    assert outcomes == Counter({"created": 1, "conflict": THREADS - 1})
    assert created_named(account, "twin") == (1, 1)


@pytest.mark.parametrize("kind", list(PROFILES))
def test_same_named_creates_over_http_one_201_the_others_409(api_user, kind):
    account = account_for(api_user, kind)

    def post(_i: int) -> str:
        response = Client().post("/api/images", {"instance_id": "inst1", "name": "twin"}, **XML)
        return str(response.status_code)

    outcomes = together(THREADS, post)

    assert outcomes == Counter({"201": 1, "409": THREADS - 1})
    assert created_named(account, "twin") == (1, 1)


def test_concurrent_deletes_of_one_image_one_wins_the_others_are_not_found(api_user):
    account = account_for(api_user, "mock")

    def delete(_i: int) -> str:
        try:
            operations.image_delete(account=account, user=api_user, external_id="img1")
        except NotFound:
            return "not found"
        return "deleted"

    outcomes = together(THREADS, delete)

    assert outcomes == Counter({"deleted": 1, "not found": THREADS - 1})
    assert Operation.objects.filter(kind=Operation.Kind.DELETE_IMAGE).count() == 1
    assert Image.objects.get(account=account, external_id="img1").deleted_at is not None


def test_concurrent_deletes_over_http_one_204_the_others_404(api_user):
    account_for(api_user, "mock")

    def delete(_i: int) -> str:
        return str(Client().delete("/api/images/img1", **XML).status_code)

    outcomes = together(THREADS, delete)

    assert outcomes == Counter({"204": 1, "404": THREADS - 1})
    assert Operation.objects.filter(kind=Operation.Kind.DELETE_IMAGE).count() == 1
