"""The PostgreSQL health check: free on a quiet connection, still catches a dead one."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL backend only")


@pytest.mark.django_db(transaction=True)
def test_quiet_connection_is_usable_without_a_round_trip(monkeypatch):
    connection.ensure_connection()
    sent = []

    def execute(self, *args, **kwargs):
        sent.append(args)

    monkeypatch.setattr(type(connection.connection), "execute", execute)
    assert connection.is_usable()
    assert sent == []


@pytest.mark.django_db(transaction=True)
def test_terminated_connection_is_not_usable_and_is_replaced():
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 10
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.05)  # the server's notice reaches the socket
    assert not connection.is_usable()
    # What Django does at the start of a request with CONN_HEALTH_CHECKS: close and reconnect.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
