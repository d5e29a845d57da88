"""The PostgreSQL health check: free on a quiet connection, still catches a dead one."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection

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


def _terminate(pid: int) -> None:
    """End a server process from another connection, as an administrator or a restart would."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_terminated_connection_is_not_usable_and_is_replaced():
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    _terminate(pid)
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


@pytest.mark.django_db(transaction=True)
def test_the_one_query_is_prepared_by_the_server_and_orm_queries_are_not():
    from django.contrib.auth import get_user_model
    from django.test.utils import CaptureQueriesContext

    from images.api import context

    user = get_user_model().objects.create_user("prepared", password="x")
    list(get_user_model().objects.filter(username="prepared"))  # an ORM query, bound on the client
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            fetched = context.fetch(None, None, user.pk)
    # The user's row version, raw; no account for this user, so none of its version.
    assert fetched.version[2:] == (None, None, None) and all(fetched.version[:2])
    assert fetched.row()[-5:-3] == tuple(v.decode() for v in fetched.version[:2])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        prepared = cursor.fetchall()
    assert len(prepared) == 1 and prepared[0][0].startswith("SELECT a.id") and prepared[0][1] == 3
    # Logged with its values, like any other query (DEBUG, query counts in tests).
    assert all(q["sql"].startswith("SELECT a.id") and f"= {user.pk}" in q["sql"] for q in queries)


@pytest.fixture
def idle_connections():
    from deltaweb.db.postgresql import base

    yield base._idle
    base.close_idle()


@pytest.mark.django_db(transaction=True)
def test_a_released_connection_serves_the_next_user_with_its_prepared_statement(idle_connections):
    from django.contrib.auth import get_user_model

    from images.api import context

    user = get_user_model().objects.create_user("reused", password="x")
    context.fetch(None, None, user.pk)
    pid = connection.connection.info.backend_pid
    connection.release()
    assert connection.connection is None and len(idle_connections) == 1
    # The next user of the process (another greenlet's wrapper) connects: the same server process.
    context.fetch(None, None, user.pk)
    assert connection.connection.info.backend_pid == pid and not idle_connections
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_in_a_transaction_or_broken_is_closed_not_kept(idle_connections):
    from django.db import transaction

    connection.ensure_connection()
    with transaction.atomic():
        connection.release()
    assert not idle_connections
    connection.close()
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    _terminate(pid)
    with pytest.raises((InterfaceError, OperationalError)):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    connection.release()
    assert not idle_connections and connection.connection is None


@pytest.mark.django_db
def test_the_search_indexes_take_a_catch_up_s_entries_in_their_pending_list():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)",
            [["imagesearch_name_trgm", "imagesearch_external_id_trgm"]],
        )
        found = dict(cursor.fetchall())
    if not found:
        pytest.skip("pg_trgm is not available here: the search is unindexed")
    assert all("gin_pending_list_limit=65536" in options for options in found.values())
