"""Set-based merge of a provider listing into the cache.

A listing is staged into a temporary table as it arrives (``images.staging``),
so memory never holds more than a provider page or two. Only after the whole
listing arrived does one short transaction write the rows that really changed
and mark the rows the provider no longer lists as missing. A listing that
fails half way therefore changes nothing. ``images.sync`` drives it.

Each staged row is one JSON document of the row's values (orjson, keys
sorted). On PostgreSQL a row keeps the 64-bit hash of the document it was
last written from (``content_hash``), so finding what changed is one join
of the stage with the account's rows comparing two integers: an unchanged
catalog parses no JSON, compares no columns and writes nothing. A trigger
(migration 0005) clears the hash whenever anything else changes a row's
content, and a row whose hash differs is compared column by column before
it is written, so only a real change moves its ``changed_version``. SQLite,
for development and tests, compares every row column by column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, models, transaction

from images.staging import Stage

# For the merge's transaction: memory for hashing a whole catalog, and no JIT
# (right after a large first sync the statistics still say the account has a
# handful of rows, and such wrong estimates make the JIT compile the
# statements for seconds).
MERGE_SETTINGS = {"work_mem": "64MB", "jit": "off"}
# The hash of a staged document; hash partitioning depends on it, so it is
# stable across PostgreSQL versions.
DOC_HASH = "hashtextextended(s.doc, 0)"


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
        for f in self.fields:
            if not isinstance(f, models.CharField | models.TextField | models.JSONField):
                raise TypeError(f"{model.__name__}.{f.name}: only text and JSON columns are merged")
        self.columns = [f.column for f in self.fields]
        # Rows that record the catalog version they changed in (the delta feed).
        self.versioned = any(f.name == "changed_version" for f in model._meta.concrete_fields)
        self.stage = f"dw_stage_{self.table}"
        self.delta = f"dw_delta_{self.table}"
        self.postgresql = connection.vendor == "postgresql"
        self.staged = 0

    # -- staging -------------------------------------------------------------

    def stage_pages(
        self, pages: Iterable[Sequence[Any]], to_row: Callable[[Any], tuple[str, Sequence[Any]]]
    ) -> int:
        """Stage every page; ``to_row`` turns a driver object into (external_id, values)."""
        self.staged = Stage(self.stage).fill(pages, to_row)
        return self.staged

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
        """Write changed rows and (for a full listing) mark the unlisted ones missing.

        Runs inside the caller's transaction, which holds the account's row
        lock: ``version`` is the catalog version this merge writes into the
        rows it changes (when the model has ``changed_version``).
        ``listed_before``: rows first seen after the listing started (created
        through the API meanwhile) are never marked missing. ``protect_sql``
        is an extra condition (on the table's own name) that keeps rows from
        being marked missing. An incremental listing (``mark_missing=False``)
        only upserts.
        """
        ops = connection.ops
        now_db = ops.adapt_datetimefield_value(now)
        before_db = ops.adapt_datetimefield_value(listed_before)
        gone_set = f"missing_since = %s, last_seen = %s{', changed_version = %s' if self.versioned else ''}"
        gone_params = [now_db, ops.adapt_datetimefield_value(previous_success or now)]
        gone_params += [version] if self.versioned else []
        merge = self._merge_postgresql if self.postgresql else self._merge_sqlite
        with transaction.atomic(), connection.cursor() as cursor:
            created, updated, missing = merge(
                cursor,
                account_id=account_id,
                now=now_db,
                before=before_db,
                version=version,
                gone=(gone_set, gone_params) if mark_missing else None,
                protect_sql=protect_sql,
            )
        return MergeResult(staged=self.staged, created=created, updated=updated, missing=missing)

    def _values_sql(self, doc: str) -> list[str]:
        """SQL taking each column's value out of the staged JSON document."""
        out = []
        for i, field in enumerate(self.fields):
            is_json = isinstance(field, models.JSONField)
            if self.postgresql:
                value = f"{doc} -> {i}" if is_json else f"{doc} ->> {i}"
                if is_json and field.null:
                    value = f"NULLIF({value}, 'null'::jsonb)"  # None is SQL NULL, as the ORM writes it
            else:
                value = f"NULLIF({doc} -> '$[{i}]', 'null')" if is_json else f"json_extract({doc}, '$[{i}]')"
            out.append(value)
        return out

    def _merge_postgresql(
        self,
        cursor: Any,
        *,
        account_id: int,
        now: Any,
        before: Any,
        version: int,
        gone: tuple[str, list[Any]] | None,
        protect_sql: str,
    ) -> tuple[int, int, int]:
        """One join of the stage with the account's rows finds what is new,
        changed or gone (the delta); only those rows are then parsed and written."""
        restore = self._planner_settings(cursor, MERGE_SETTINGS)
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE account_id = %s)", [account_id])
        if not cursor.fetchone()[0]:  # a first sync: everything listed is new
            created = self._insert(cursor, f"{self.stage} s", account_id, version, now)
            self._planner_settings(cursor, restore)
            return created, 0, 0
        args = (cursor, account_id, before, gone is not None)
        delta = self._delta(*args)
        # A provider may list an id twice (pages shifting under it): the last
        # copy wins. Rows that exist are checked here; new ids listed twice
        # fail the insert's unique index instead.
        if delta and self._listed_twice(cursor) and self._dedupe(cursor):
            delta = self._delta(*args)
        created = updated = missing = 0
        if delta:
            new_rows = f"{self.delta} s WHERE s.row_id IS NULL AND s.seq IS NOT NULL"
            created = self._insert(cursor, new_rows, account_id, version, now, lambda: self._delta(*args))
            updated = self._update_changed(cursor, version, now)
            if gone is not None:
                cursor.execute(
                    f"UPDATE {self.table} SET {gone[0]} FROM {self.delta} d WHERE d.seq IS NULL "
                    f"AND {self.table}.id = d.row_id {protect_sql}",
                    gone[1],
                )
                missing = max(cursor.rowcount, 0)
        self._planner_settings(cursor, restore)
        return created, updated, missing

    def _delta(self, cursor: Any, account_id: int, before: Any, full: bool) -> int:
        """Fill the delta table: staged rows that are new, differ or come back
        (with their document), and, for a full listing, present rows not listed."""
        rows = f"SELECT id, external_id, content_hash, missing_since, first_seen FROM {self.table} "
        rows += "WHERE account_id = %s"
        listed_and_differs = (
            f"(s.seq IS NOT NULL AND (r.id IS NULL OR r.content_hash IS DISTINCT FROM {DOC_HASH} "
            "OR r.missing_since IS NOT NULL))"
        )
        params: list[Any] = [account_id]
        if full:
            join = f"FULL JOIN ({rows}) r ON r.external_id = s.external_id"
            where = (
                f"(s.seq IS NULL AND r.missing_since IS NULL AND r.first_seen < %s) OR {listed_and_differs}"
            )
            params.append(before)
        else:
            join = f"LEFT JOIN ({rows}) r ON r.external_id = s.external_id"
            where = listed_and_differs
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self.delta} "
            "(seq integer, external_id text, row_id bigint, doc text)"
        )
        cursor.execute(f"TRUNCATE {self.delta}")
        cursor.execute(
            f"INSERT INTO {self.delta} SELECT s.seq, s.external_id, r.id, s.doc FROM {self.stage} s {join} "
            f"WHERE {where}",
            params,
        )
        found = max(cursor.rowcount, 0)
        if found:
            # So that writing a few rows probes them by id rather than hashing the whole table.
            cursor.execute(f"ANALYZE {self.delta}")
        return found

    def _listed_twice(self, cursor: Any) -> bool:
        """Whether a listed row of the delta that exists has more than one staged copy."""
        restore = self._planner_settings(cursor, {"enable_nestloop": "off"})  # never quadratic
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {self.stage} s WHERE s.external_id IN (SELECT external_id "
            f"FROM {self.delta} WHERE seq IS NOT NULL AND row_id IS NOT NULL) "
            "GROUP BY s.external_id HAVING count(*) > 1)"
        )
        twice = cursor.fetchone()[0]
        self._planner_settings(cursor, restore)
        return twice

    def _dedupe(self, cursor: Any) -> int:
        """Delete every staged copy of an id but the last; returns how many."""
        restore = self._planner_settings(cursor, {"enable_nestloop": "off"})  # never quadratic
        cursor.execute(
            f"DELETE FROM {self.stage} s USING (SELECT external_id, max(seq) AS keep FROM {self.stage} "
            "GROUP BY external_id HAVING count(*) > 1) d "
            "WHERE s.external_id = d.external_id AND s.seq < d.keep"
        )
        removed = max(cursor.rowcount, 0)
        self._planner_settings(cursor, restore)
        return removed

    def _insert(
        self,
        cursor: Any,
        source: str,
        account_id: int,
        version: int,
        now: Any,
        after_dedupe: Callable[[], object] = lambda: None,
    ) -> int:
        """Insert the new rows of ``source`` (staged rows, as ``s``); returns how many."""
        cols = ", ".join(self.columns) + (", changed_version" if self.versioned else "")
        values = ", ".join(self._values_sql("d.j")) + (", %s" if self.versioned else "")
        sql = (
            f"INSERT INTO {self.table} "
            f"(account_id, external_id, content_hash, {cols}, first_seen, last_seen) "
            f"SELECT %s, d.external_id, d.content_hash, {values}, %s, %s FROM (SELECT s.external_id, "
            # OFFSET 0 keeps the subquery whole: each document is parsed once, not once per column.
            f"{DOC_HASH} AS content_hash, s.doc::jsonb AS j FROM {source} OFFSET 0) d"
        )
        params = [account_id, *([version] * self.versioned), now, now]
        try:
            with transaction.atomic():
                cursor.execute(sql, params)
        except IntegrityError:
            # A new id listed twice, or inserted meanwhile (an API lookup): such
            # a row is left as it is; it has no hash, so the next sync compares it.
            if self._dedupe(cursor):
                after_dedupe()
            cursor.execute(sql + " ON CONFLICT (account_id, external_id) DO NOTHING", params)
        return max(cursor.rowcount, 0)

    def _update_changed(self, cursor: Any, version: int, now: Any) -> int:
        """Rewrite the listed rows whose hash differs; returns how many really changed.

        A row whose hash was stale (cleared by the trigger, or from before
        hashes) but whose content is the same gets the new hash, nothing else.
        """
        t = self.table
        values = self._values_sql("src.j")
        differs = (
            f"(({', '.join(f'{t}.{c}' for c in self.columns)}, {t}.missing_since) "
            f"IS DISTINCT FROM ({', '.join(values)}, NULL))"
        )
        sets = ", ".join(f"{c} = {v}" for c, v in zip(self.columns, values, strict=True))
        sets += ", content_hash = src.content_hash, missing_since = NULL"
        sets += f", last_seen = CASE WHEN {differs} THEN %s ELSE {t}.last_seen END"
        params: list[Any] = [now]
        changed = "last_seen = %s"
        if self.versioned:
            sets += f", changed_version = CASE WHEN {differs} THEN %s ELSE {t}.changed_version END"
            params.append(version)
            changed = "changed_version = %s"
        params.append(version if self.versioned else now)
        cursor.execute(
            f"WITH u AS (UPDATE {t} SET {sets} FROM (SELECT row_id, {DOC_HASH} AS content_hash, "
            f"s.doc::jsonb AS j FROM {self.delta} s WHERE s.row_id IS NOT NULL AND s.seq IS NOT NULL "
            "OFFSET 0) src "
            f"WHERE {t}.id = src.row_id RETURNING {changed} AS changed) "
            "SELECT count(*) FROM u WHERE changed",
            params,
        )
        return cursor.fetchone()[0]

    @staticmethod
    def _planner_settings(cursor: Any, settings: dict[str, str]) -> dict[str, str]:
        """Set planner settings for the rest of the transaction; returns the previous ones."""
        names = list(settings)
        cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names)
        previous = dict(zip(names, cursor.fetchone(), strict=True))
        pairs = [x for name in names for x in (name, settings[name])]
        cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names)), pairs)
        return previous

    def _upsert_sql(self, source: str, doc: str, where: str) -> str:
        """SQLite's INSERT ... ON CONFLICT DO UPDATE from ``source`` (external_id, ``doc``).

        Parameters: account id, [version], first_seen, last_seen.
        """
        t = self.table
        cols = ", ".join(self.columns)
        values = ", ".join(self._values_sql(doc))
        sets = ", ".join(f"{c} = excluded.{c}" for c in self.columns)
        sets += ", missing_since = NULL, last_seen = excluded.last_seen"
        if self.versioned:
            cols, values = cols + ", changed_version", values + ", %s"
            sets += ", changed_version = excluded.changed_version"
        return (
            f"INSERT INTO {t} (account_id, external_id, {cols}, first_seen, last_seen, missing_since) "
            f"SELECT %s, external_id, {values}, %s, %s, NULL FROM {source} "
            f"ON CONFLICT (account_id, external_id) DO UPDATE SET {sets} WHERE {where}"
        )

    def _merge_sqlite(
        self,
        cursor: Any,
        *,
        account_id: int,
        now: Any,
        before: Any,
        version: int,
        gone: tuple[str, list[Any]] | None,
        protect_sql: str,
    ) -> tuple[int, int, int]:
        """Correct rather than fast: every staged row is compared column by column."""
        t = self.table
        same = [
            f"{f'json({t}.{c})' if isinstance(f, models.JSONField) else f'{t}.{c}'} IS excluded.{c}"
            for f, c in zip(self.fields, self.columns, strict=True)
        ]
        differs = f"NOT ({' AND '.join(same)} AND {t}.missing_since IS NULL)"
        upsert = self._upsert_sql(f"{self.stage} WHERE true", "doc", differs)
        count_sql = f"SELECT COUNT(*) FROM {t} WHERE account_id = %s"
        cursor.execute(count_sql, [account_id])
        before_count = cursor.fetchone()[0]
        cursor.execute(upsert, [account_id, *([version] * self.versioned), now, now])
        written = max(cursor.rowcount, 0)
        cursor.execute(count_sql, [account_id])
        created = cursor.fetchone()[0] - before_count
        missing = 0
        if gone is not None:
            cursor.execute(
                f"UPDATE {t} SET {gone[0]} WHERE account_id = %s AND missing_since IS NULL "
                f"AND first_seen < %s {protect_sql} AND NOT EXISTS "
                f"(SELECT 1 FROM {self.stage} s WHERE s.external_id = {t}.external_id)",
                [*gone[1], account_id, before],
            )
            missing = max(cursor.rowcount, 0)
        return created, written - created, missing
