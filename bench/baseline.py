"""The baseline: a framework-free WSGI app doing one query and orjson, nothing else.

Served by the same gunicorn as deltaweb, so the ratio isolates what
Django, DRF and our rendering cost.
"""

import os
import sqlite3

import orjson

DATABASE = os.environ["BENCH_DATABASE"]
QUERY = (
    "SELECT external_id, name, description, owner_id, architecture, state, root_type, creation_time "
    "FROM images_image WHERE account_id = {mark} AND missing_since IS NULL AND deleted_at IS NULL "
    "ORDER BY external_id"
)
SHOW = QUERY.replace("ORDER BY external_id", "AND external_id = {mark}")


def _connect():
    if DATABASE.startswith("postgres"):
        import psycopg

        return psycopg.connect(DATABASE, autocommit=True), "%s"
    return sqlite3.connect(DATABASE.removeprefix("sqlite:///"), check_same_thread=False), "?"


_conn, _mark = _connect()
KEYS = ("id", "name", "description", "owner", "architecture", "state", "root_type", "creation_time")


def application(environ, start_response):
    account = int(environ.get("HTTP_X_BENCH_ACCOUNT", "1"))
    path = environ["PATH_INFO"]
    cur = _conn.cursor()
    if path.startswith("/api/images/"):
        cur.execute(SHOW.format(mark=_mark), (account, path.rsplit("/", 1)[1]))
        rows = cur.fetchall()
        body = orjson.dumps({"image": dict(zip(KEYS, rows[0], strict=True))})
    else:
        cur.execute(QUERY.format(mark=_mark), (account,))
        body = orjson.dumps({"images": [dict(zip(KEYS, r, strict=True)) for r in cur.fetchall()]})
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
