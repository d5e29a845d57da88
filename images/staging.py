"""Staging a provider listing: one temporary-table row per listed object.

Rows arrive page by page and are written as they come (COPY on PostgreSQL,
in batches of about a megabyte), so memory never holds more than a page or
two whatever the catalog size. Each row is the object's external id and one
JSON document of its column values (orjson, keys sorted), which is also
what its content hash is computed from (``images.merge``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import orjson
from django.db import DatabaseError, connection, transaction

# Encoded rows go to PostgreSQL in COPY writes of about this size, so the
# server parses one while the next is encoded (two cores at work, not one
# after the other).
COPY_CHUNK_BYTES = 32 * 1024
# PostgreSQL session memory for temp tables (8 MB by default): a stage of
# 100,000 images is about 40 MB.
TEMP_BUFFERS = "64MB"
# Keys sorted, so equal content always hashes the same; non-string keys
# become strings, as the standard json module would make them.
OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _mapping_to_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _without_nul(value: Any) -> Any:
    """The value with NUL characters removed: PostgreSQL text cannot hold them."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def encode_row(values: Sequence[Any]) -> bytes:
    """One row's values as the JSON document that is staged (and hashed)."""
    doc = orjson.dumps(values, default=_mapping_to_dict, option=OPTIONS)
    if b"\\" in doc and b"\\u0000" in doc:
        doc = orjson.dumps(_without_nul(values), default=_mapping_to_dict, option=OPTIONS)
    return doc


def _copy_text(value: str) -> bytes:
    """A text value in COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value or "\x00" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        value = value.replace("\x00", "")
    return value.encode()


def _temp_buffers(cursor: Any) -> None:
    """PostgreSQL accepts this only before the session first touches a temp
    table; later syncs on the same connection keep what the first one set."""
    try:
        with transaction.atomic():
            cursor.execute("SET temp_buffers = %s", [TEMP_BUFFERS])
    except DatabaseError:
        pass


class Stage:
    """A temporary table holding one listing: (seq, external_id, doc) on
    PostgreSQL, where ``seq`` orders copies of an id listed twice; SQLite's
    primary key keeps the last copy itself."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.postgresql = connection.vendor == "postgresql"
        self.staged = 0

    def fill(self, pages: Iterable[Sequence[Any]], to_row: Callable[[Any], tuple[str, Sequence[Any]]]) -> int:
        """Stage every page; ``to_row`` turns a driver object into (external_id, values).
        Returns the number of rows listed."""
        self.staged = 0
        with connection.cursor() as cursor:
            if self.postgresql:
                _temp_buffers(cursor)
                # No index: the merge joins the whole stage at once (hash joins).
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {self.name} (seq integer, external_id text, doc text)"
                )
                cursor.execute(f"TRUNCATE {self.name}")
                self._copy_pages(cursor, pages, to_row)
            else:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {self.name} (external_id text PRIMARY KEY, doc text)"
                )
                cursor.execute(f"DELETE FROM {self.name}")
                self._insert_pages(cursor, pages, to_row)
        return self.staged

    def _copy_pages(self, cursor: Any, pages: Iterable[Sequence[Any]], to_row: Callable) -> None:
        """A COPY opens once a chunk is ready and ends with the page: between
        pages the connection is free (the lease's heartbeat uses it) and no
        statement stays open while the provider is asked for the next page."""
        sql = f"COPY {self.name} (seq, external_id, doc) FROM STDIN"
        pending: list[bytes] = []
        size = seq = 0
        for page in pages:
            with ExitStack() as page_copy:
                copy = None
                for obj in page:  # the hot loop of a sync: 100,000 times for 100,000 images
                    eid, values = to_row(obj)
                    doc = encode_row(values)
                    if b"\\" in doc:  # JSON escapes, which COPY would read as its own
                        doc = doc.replace(b"\\", b"\\\\")
                    seq += 1
                    line = b"%d\t%s\t%s\n" % (seq, _copy_text(eid), doc)
                    pending.append(line)
                    size += len(line)
                    if size >= COPY_CHUNK_BYTES:
                        if copy is None:
                            copy = page_copy.enter_context(cursor.cursor.copy(sql))
                        copy.write(b"".join(pending))
                        pending, size = [], 0
                if copy is not None and pending:
                    copy.write(b"".join(pending))
                    pending, size = [], 0
        if pending:
            with cursor.cursor.copy(sql) as copy:
                copy.write(b"".join(pending))
        self.staged = seq

    def _insert_pages(self, cursor: Any, pages: Iterable[Sequence[Any]], to_row: Callable) -> None:
        sql = f"INSERT OR REPLACE INTO {self.name} (external_id, doc) VALUES (%s, %s)"
        for page in pages:
            rows = [(eid, encode_row(values).decode()) for eid, values in map(to_row, page)]
            if rows:
                cursor.executemany(sql, rows)
                self.staged += len(rows)
