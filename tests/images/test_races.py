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


def waiting_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else fixed for the whole transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_delete_during_a_sync_merge_waits_for_it_instead_of_deadlocking(api_user):
    """Sync's merge locks the account, then writes image rows; every API writer
    locks the account first too, so it waits instead of holding a row the merge needs."""
    from django.db import transaction

    from images.models import ProviderAccount

    account = account_for(api_user, "mock")
    merging, outcome = threading.Event(), {}

    def merge() -> None:
        try:
            with transaction.atomic():
                ProviderAccount.objects.select_for_update().filter(pk=account.pk).first()
                merging.set()
                for _ in range(200):  # until the delete is waiting on a lock
                    if waiting_backends():
                        break
                    threading.Event().wait(0.05)
                outcome["waited"] = bool(waiting_backends())
                Image.objects.filter(account=account, external_id="img1").update(description="merged")
            outcome["merge"] = "committed"
        except Exception as exc:  # noqa: BLE001
            outcome["merge"] = type(exc).__name__
        finally:
            connection.close()

    def delete() -> None:
        merging.wait(30)
        try:
            operations.image_delete(account=account, user=api_user, external_id="img1")
            outcome["delete"] = "deleted"
        except Exception as exc:  # noqa: BLE001
            outcome["delete"] = type(exc).__name__
        finally:
            connection.close()

    threads = [threading.Thread(target=merge), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert outcome == {"waited": True, "merge": "committed", "delete": "deleted"}
    row = Image.objects.get(account=account, external_id="img1")
    assert row.description == "merged" and row.deleted_at is not None
