"""Django's PostgreSQL backend with a health check that costs no round trip.

``CONN_HEALTH_CHECKS`` makes Django run ``SELECT 1`` before the first query of
every request: on a cached read that doubles the round trips. An idle
connection receives nothing from the server unless the server is going away
(it sends a FATAL notice, or the socket reaches end of file), so a readable
socket, or a connection psycopg already knows is broken, is what needs the
real check; a quiet one is usable as it is.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
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
