"""The baselines deltaweb is measured against, served by the same gunicorn.

* ``application``: a framework-free WSGI app doing one query and orjson,
  nothing else (the ratio isolates what Django, DRF and our rendering cost).
* ``static_application``: a framework-free app returning deltaweb's own bytes
  for a few paths after the same kind of Basic-auth check (an HMAC of the
  header compared with the remembered one): the speed limit for a cached answer.
"""

import hashlib
import hmac
import os
import sqlite3
from pathlib import Path

import orjson

DATABASE = os.environ.get("BENCH_DATABASE", "")
QUERY = (
    "SELECT external_id, name, description, owner_id, architecture, state, root_type, creation_time "
    "FROM images_image WHERE account_id = {mark} AND missing_since IS NULL AND deleted_at IS NULL "
    "ORDER BY external_id"
)
SHOW = QUERY.replace("ORDER BY external_id", "AND external_id = {mark}")
KEYS = ("id", "name", "description", "owner", "architecture", "state", "root_type", "creation_time")


def _connect():
    if DATABASE.startswith("postgres"):
        import psycopg

        return psycopg.connect(DATABASE, autocommit=True), "%s"
    return sqlite3.connect(DATABASE.removeprefix("sqlite:///"), check_same_thread=False), "?"


_conn = _mark = None


def application(environ, start_response):
    global _conn, _mark
    if _conn is None:
        _conn, _mark = _connect()
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


# -- static bytes ---------------------------------------------------------------------

_KEY = os.environ.get("SECRET_KEY", "static").encode()


def _mac(header: str) -> bytes:
    return hmac.new(_KEY, header.encode(), hashlib.sha256).digest()


def _load_static() -> tuple[dict[str, tuple[bytes, str]], bytes]:
    """BENCH_STATIC_DIR holds one file per path (``/`` as ``_``) and ``authorization``."""
    root = Path(os.environ.get("BENCH_STATIC_DIR", "."))
    documents = {}
    for file in root.glob("*.xml"):
        body = file.read_bytes()
        etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
        documents[file.stem.replace("_", "/")] = (body, etag)
    authorization = (root / "authorization").read_text() if (root / "authorization").exists() else ""
    return documents, _mac(authorization)


_static = None


def static_application(environ, start_response):
    global _static
    if _static is None or not _static[0]:  # the files are written once the servers are up
        _static = _load_static()
    documents, remembered = _static
    if not hmac.compare_digest(_mac(environ.get("HTTP_AUTHORIZATION", "")), remembered):
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="bench"')])
        return [b""]
    found = documents.get(environ["PATH_INFO"])
    if found is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    body, etag = found
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("ETag", etag),
            ("Server", "Apache-Deltacloud/1.1.3"),
        ],
    )
    return [body]
