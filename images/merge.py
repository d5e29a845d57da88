"""Set-based merge of a provider listing into the cache.

A listing is staged page by page into a temporary table (COPY on PostgreSQL),
so memory never holds more than one provider page. Only after the whole
listing arrived does one short transaction upsert the rows that really
changed (``IS DISTINCT FROM``: an unchanged catalog writes nothing) and mark
the rows the provider no longer lists as missing. A listing that fails half
way therefore changes nothing. ``images.sync`` drives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, models, transaction


@dataclass(frozen=True)
class MergeResult:
    staged: int
    created: int
    updated: int
    missing: int

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.missing)


class CatalogMerge:
    """Merges staged rows of one model (Image or Instance) for one account."""

    def __init__(self, model: type[models.Model], columns: Sequence[str]) -> None:
        self.model = model
        self.table = model._meta.db_table
        self.fields = [model._meta.get_field(c) for c in columns]
        self.columns = [f.column for f in self.fields]
        self.json_columns = {f.column for f in self.fields if isinstance(f, models.JSONField)}
        # Rows that record the catalog version they changed in (the delta feed).
        self.versioned = any(f.name == "changed_version" for f in model._meta.concrete_fields)
        self.stage = f"dw_stage_{self.table}"
        self.vendor = connection.vendor

    # -- staging -------------------------------------------------------------

    def _create_stage(self, cursor: Any) -> None:
        json_type = "jsonb" if self.vendor == "postgresql" else "text"
        cols = ", ".join(f"{c} {json_type if c in self.json_columns else 'text'}" for c in self.columns)
        if self.vendor == "postgresql":
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} (seq bigserial, external_id text, {cols})"
            )
            # The merge probes the stage once per cached row: without an index
            # that is quadratic in the catalog size.
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {self.stage}_eid ON {self.stage} (external_id)")
            cursor.execute(f"TRUNCATE {self.stage}")
        else:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} (external_id text PRIMARY KEY, {cols})"
            )
            cursor.execute(f"DELETE FROM {self.stage}")

    def _encode(self, row: Sequence[Any]) -> list[Any]:
        out = []
        for column, value in zip(self.columns, row, strict=True):
            if column in self.json_columns:
                value = None if value is None else json.dumps(value, sort_keys=True)
            out.append(value)
        return out

    def stage_pages(
        self, pages: Iterable[Sequence[Any]], to_row: Callable[[Any], tuple[str, Sequence[Any]]]
    ) -> int:
        """Stage every page; ``to_row`` turns a driver object into (external_id, values)."""
        count = 0
        with connection.cursor() as cursor:
            self._create_stage(cursor)
            names = ", ".join(["external_id", *self.columns])
            for page in pages:
                rows = [[eid, *self._encode(values)] for eid, values in map(to_row, page)]
                if not rows:
                    continue
                if self.vendor == "postgresql":
                    with cursor.cursor.copy(f"COPY {self.stage} ({names}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    marks = ", ".join(["%s"] * (len(self.columns) + 1))
                    cursor.executemany(
                        f"INSERT OR REPLACE INTO {self.stage} ({names}) VALUES ({marks})", rows
                    )
                count += len(rows)
            if self.vendor == "postgresql":
                cursor.execute(f"ANALYZE {self.stage}")  # temp tables are never auto-analyzed
        return count

    # -- merging -------------------------------------------------------------

    def merge(
        self,
        *,
        account_id: int,
        now: datetime,
        listed_before: datetime,
        previous_success: datetime | None,
        version: int,
        mark_missing: bool = True,
        protect_sql: str = "",
    ) -> MergeResult:
        """Upsert changed rows and (for a full listing) mark the unlisted ones missing.

        Runs inside the caller's transaction, which holds the account's row
        lock: ``version`` is the catalog version this merge writes into the
        rows it changes (when the model has ``changed_version``).
        ``listed_before``: rows first seen after the listing started (created
        through the API meanwhile) are never marked missing. ``protect_sql``
        is an extra condition that keeps rows from being marked missing. An
        incremental listing (``mark_missing=False``) only upserts.
        """
        ops = connection.ops
        now_db = ops.adapt_datetimefield_value(now)
        before_db = ops.adapt_datetimefield_value(listed_before)
        seen_db = ops.adapt_datetimefield_value(previous_success or now)
        cols = ", ".join(self.columns)
        t = self.table
        sets = ", ".join(f"{c} = excluded.{c}" for c in self.columns)
        versioned = self.versioned
        extra_cols = ", changed_version" if versioned else ""
        extra_vals = ", %s" if versioned else ""
        extra_set = ", changed_version = excluded.changed_version" if versioned else ""
        if self.vendor == "postgresql":
            source = (
                f"SELECT DISTINCT ON (external_id) %s, external_id, {cols}, %s, %s, NULL{extra_vals} "
                f"FROM {self.stage} ORDER BY external_id, seq DESC"
            )
            differs = (
                f"({', '.join(f'{t}.{c}' for c in self.columns)}, {t}.missing_since) "
                f"IS DISTINCT FROM ({', '.join(f'excluded.{c}' for c in self.columns)}, NULL)"
            )
        else:
            source = f"SELECT %s, external_id, {cols}, %s, %s, NULL{extra_vals} FROM {self.stage} WHERE true"
            same = " AND ".join(f"{t}.{c} IS excluded.{c}" for c in self.columns)
            differs = f"NOT ({same} AND {t}.missing_since IS NULL)"
        upsert = (
            f"INSERT INTO {t} (account_id, external_id, {cols}, first_seen, last_seen, missing_since"
            f"{extra_cols}) {source} ON CONFLICT (account_id, external_id) DO UPDATE SET {sets}, "
            f"last_seen = excluded.last_seen, missing_since = NULL{extra_set} WHERE {differs}"
        )
        upsert_params = [account_id, now_db, now_db] + ([version] if versioned else [])
        mark_missing_sql = (
            f"UPDATE {t} SET missing_since = %s, last_seen = %s"
            f"{', changed_version = %s' if versioned else ''} WHERE account_id = %s "
            f"AND missing_since IS NULL AND first_seen < %s {protect_sql} AND NOT EXISTS "
            f"(SELECT 1 FROM {self.stage} s WHERE s.external_id = {t}.external_id)"
        )
        missing_params = [now_db, seen_db] + ([version] if versioned else []) + [account_id, before_db]
        count_sql = f"SELECT COUNT(*) FROM {t} WHERE account_id = %s"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(count_sql, [account_id])
            before = cursor.fetchone()[0]
            cursor.execute(upsert, upsert_params)
            upserted = max(cursor.rowcount, 0)
            cursor.execute(count_sql, [account_id])
            created = cursor.fetchone()[0] - before
            missing = 0
            if mark_missing:
                cursor.execute(mark_missing_sql, missing_params)
                missing = max(cursor.rowcount, 0)
            cursor.execute(f"SELECT COUNT(*) FROM {self.stage}")
            staged = cursor.fetchone()[0]
        return MergeResult(staged=staged, created=created, updated=upserted - created, missing=missing)
