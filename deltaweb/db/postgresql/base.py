"""Django's PostgreSQL backend with a health check that costs no round trip.

``CONN_HEALTH_CHECKS`` makes Django run ``SELECT 1`` before the first query of
every request: on a cached read that doubles the round trips. An idle
connection receives nothing from the server unless the server is going away
(it sends a FATAL notice, or the socket reaches end of file), so a readable
socket, or a connection psycopg already knows is broken, is what needs the
real check; a quiet one is usable as it is.

``prepared_cursor`` is for the one query every authenticated read makes: bound
and prepared by the server (the extended protocol), so neither Python
formatting of the parameters nor the server's planning is paid per request,
and it works behind poolers that support protocol-level prepared statements
(PgBouncer 1.21+), where SQL ``PREPARE`` does not.

``release`` hands a connection to the process's next user instead of closing
it. Django keeps a connection per greenlet under gevent and the web front ends
each one with its client connection: connecting again (a server process, the
session set-up, the statement prepared again) for every new client was what
the slowest requests waited for.
"""

from __future__ import annotations

import os
import select
import time

from django.db.backends.postgresql import base, operations
from psycopg.pq import TransactionStatus


class PreparedCursor(base.ServerBindingCursor):
    """Server-side binding, the statement prepared on first use (psycopg keeps it per connection)."""

    def execute(self, query, params=None, **kwargs):
        return super().execute(query, params, prepare=True, **kwargs)


# (raw connection, process, monotonic time it was opened): idle, ready for the next user.
_idle: list[tuple[object, int, float]] = []
IDLE_MAX = int(os.environ.get("DB_IDLE_CONNECTIONS", "32"))


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        # A prepared execution leaves psycopg no query text: show the statement with its values.
        return super().last_executed_query(cursor, sql, params) or self.compose_sql(sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        # Django turns psycopg's prepared statements off for every query (poolers);
        # ORM queries bind on the client and never prepare anyway, so this reaches
        # only PreparedCursor's statement.
        if params.get("prepare_threshold") is None:
            params["prepare_threshold"] = 5
        return params

    def get_new_connection(self, conn_params):
        max_age = self.settings_dict["CONN_MAX_AGE"]
        while _idle:
            raw, pid, opened = _idle.pop()
            fresh = max_age is None or time.monotonic() - opened < max_age
            if pid == os.getpid() and fresh and _idle_and_sound(raw):
                self._dw_opened = opened
                if max_age is not None:
                    self.close_at = opened + max_age  # its age counts from when it was opened
                return raw
            if pid == os.getpid():
                raw.close()
        self._dw_opened = time.monotonic()
        return super().get_new_connection(conn_params)

    def release(self) -> None:
        """Hand the connection back for the process's next user, else close it."""
        raw = self.connection
        if raw is None:
            return
        reusable = (
            not self.in_atomic_block
            and not self.errors_occurred
            and self.get_autocommit()
            and len(_idle) < IDLE_MAX
            and _idle_and_sound(raw)
        )
        if not reusable:
            self.close()
            return
        self.run_on_commit = []
        _idle.append((raw, os.getpid(), getattr(self, "_dw_opened", time.monotonic())))
        self.connection = None  # what close() leaves, without closing

    def prepared_execute(self, sql: str, params: dict):
        """The psycopg cursor of a statement the server keeps prepared, executed
        with Django's error translation; its ``pgresult`` can be read raw."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        cursor = PreparedCursor(self.connection)
        if self.queries_logged:  # DEBUG and tests: logged and counted like any query
            self._prepare_cursor(cursor).execute(sql, params)
            return cursor
        with self.wrap_database_errors:
            cursor.execute(sql, params)
        return cursor

    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        if conn.info.transaction_status not in (TransactionStatus.IDLE, TransactionStatus.INTRANS):
            return super().is_usable()
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        # Something arrived on an idle connection (a shutdown notice, EOF): ask the server.
        return super().is_usable() if readable else True


def close_idle() -> None:
    """Close the connections nobody is using (before dropping a database)."""
    while _idle:
        raw, pid, _ = _idle.pop()
        if pid == os.getpid():
            raw.close()


def _idle_and_sound(raw) -> bool:
    return not raw.closed and not raw.broken and raw.info.transaction_status == TransactionStatus.IDLE
