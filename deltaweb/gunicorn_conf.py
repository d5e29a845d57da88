"""gunicorn settings for deltaweb (``gunicorn -c deltaweb/gunicorn_conf.py deltaweb.wsgi``).

Used by compose, ``make run`` (runstack) and the tests' servers alike.

The front must not be held by slow clients. With sync workers, two clients that
send half their headers and wait hold both workers and everyone else times out
(measured: see "Limits and hardening" in the README and ``python -m bench attack``).
gevent workers give each connection a greenlet instead of a process, so a
half-open connection costs a few kilobytes, not a worker; the database driver
(psycopg 3) cooperates with gevent. A client that stalls for
``GUNICORN_CLIENT_TIMEOUT`` seconds in the middle of a request is disconnected.
"""

import gc
import os
import re
import sys

import gevent
import gunicorn.http.wsgi
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventWorker

from deltaweb.version import SERVER_HEADER
from images.scrub import MASK, is_sensitive, scrub_query, scrub_text

# gunicorn writes its own Server header before the application's; make it
# ours so responses carry exactly one.
gunicorn.http.wsgi.SERVER = SERVER_HEADER

CLIENT_TIMEOUT = float(os.environ.get("GUNICORN_CLIENT_TIMEOUT", "20"))


class TimeoutGeventWorker(GeventWorker):
    """gevent worker whose client sockets time out: a stalled client is dropped.

    Django keeps a database connection per greenlet (its connections are
    context-local), and each client connection is served by a greenlet of its
    own: when the client connection ends, so does its database connection
    (else every client that ever connected would leave one open).
    """

    def handle_request(self, listener_name, req, sock, addr):
        try:
            super().handle_request(listener_name, req, sock, addr)
        finally:
            # A keep-alive client whose next request is already buffered would be
            # served again at once, the worker's other connections waiting behind it
            # (the slowest requests under load): each connection gets its turn.
            gevent.sleep(0)

    def handle(self, listener, client, addr):
        client.settimeout(CLIENT_TIMEOUT)
        try:
            # GeventWorker.handle would make the socket blocking again (no timeout).
            super(GeventWorker, self).handle(listener, client, addr)
        finally:
            _close_database_connections()


def _close_database_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        for connection in connections.all(initialized_only=True):
            # PostgreSQL (deltaweb.db.postgresql): kept for the next client's greenlet.
            getattr(connection, "release", connection.close)()


class ScrubbingLogger(Logger):
    """The access log with secrets masked: query strings, request lines, headers (images/scrub.py)."""

    _RAW_URI = re.compile(r"^(\S+ [^?\s]*\?)(\S*)( .*)?$")

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["q"] = scrub_query(atoms.get("q") or "")
        match = self._RAW_URI.match(atoms.get("r") or "")
        if match:
            atoms["r"] = f"{match.group(1)}{scrub_query(match.group(2))}{match.group(3) or ''}"
        atoms["f"] = scrub_text(atoms.get("f") or "-")
        for key in list(atoms):
            if key.startswith("{") and key.endswith(("}i", "}o")) and is_sensitive(key[1:-2]):
                atoms[key] = MASK
        return atoms


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = TimeoutGeventWorker
# Connections each worker holds at once (greenlets); beyond it, new ones wait in the backlog.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Request line and header limits (gunicorn answers 400 itself beyond them).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
logger_class = ScrubbingLogger
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker) -> None:
    """Once the application is loaded: its objects (modules, settings, URL
    patterns, templates) live as long as the worker, so the cyclic garbage
    collector stops walking them on every full collection (those walks were
    the slowest requests' pauses)."""
    gc.freeze()
