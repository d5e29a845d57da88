"""Same-named creates on a provider without create ids (FGCP): the second is
refused up front while the first is unresolved, even when both arrive at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from images import operations, services, sync
from images.models import Operation
from images.operations import image_create
from providers.exceptions import Conflict
from tests.conftest import make_account


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_same_named_create_waits_then_is_refused(api_user):
    # given: an FGCP-like account with two stopped instances
    account = make_account("cloud", users=[api_user], is_default=True, params={"profile": "fgcp"})
    sync.catalog_sync(account=account)
    driver = services.build_driver(account=account)
    driver.instance_action("inst1", "stop")
    driver.instance_action("inst2", "stop")
    for instance_id in ("inst1", "inst2"):  # cached as stopped: the request path writes nothing more
        operations.instance_refresh(account=account, external_id=instance_id)
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def first() -> None:
        # a create that has passed its checks and written its rows, not yet committed
        try:
            with transaction.atomic():
                image_create(
                    account=account, user=api_user, instance_id="inst1", name="twin", description=None
                )
                holding.set()
                release.wait(10)
            outcome["first"] = "created"
        finally:
            connection.close()

    def second() -> None:
        try:
            image_create(account=account, user=api_user, instance_id="inst2", name="twin", description=None)
            outcome["second"] = "created"
        except Conflict as exc:
            outcome["second"] = str(exc)
        except Exception as exc:  # noqa: BLE001  (what a request would turn into a 500)
            outcome["second"] = type(exc).__name__
        finally:
            connection.close()

    one = threading.Thread(target=first)
    one.start()
    assert holding.wait(10)
    # when: the same name arrives meanwhile
    two = threading.Thread(target=second)
    two.start()
    two.join(0.5)
    # then: it waits for the first instead of passing the check beside it
    assert two.is_alive() and "second" not in outcome
    release.set()
    one.join(15)
    two.join(15)
    assert outcome == {"first": "created", "second": "An image named 'twin' is already being created"}
    assert list(Operation.objects.values_list("instance_id", flat=True)) == ["inst1"]
