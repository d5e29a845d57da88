"""Pieces every page of the console shares: badges, durations, links, counts."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.timesince import timesince

from images.console import Health
from images.models import Operation, SyncRun

# CSS modifier per meaning: green is good, red needs a person, amber is
# trouble that may pass, blue is work in progress, grey is nothing to see.
HEALTH_TONES = {
    Health.HEALTHY: "ok",
    Health.SYNCING: "busy",
    Health.FAILING: "warn",
    Health.CREDENTIALS_REJECTED: "bad",
    Health.DISABLED: "off",
    Health.NEVER_SYNCED: "off",
}
OPERATION_TONES = {
    Operation.Status.QUEUED: "busy",
    Operation.Status.CALLING: "busy",
    Operation.Status.POLLING: "busy",
    Operation.Status.SUCCEEDED: "ok",
    Operation.Status.FAILED: "bad",
    Operation.Status.CANCELLED: "off",
}
RUN_TONES = {
    SyncRun.Outcome.RUNNING: "busy",
    SyncRun.Outcome.SUCCEEDED: "ok",
    SyncRun.Outcome.FAILED: "bad",
}
IMAGE_TONES = {"AVAILABLE": "ok", "PENDING": "busy", "FAILED": "bad"}

# An unfiltered changelist of a table bigger than this shows PostgreSQL's
# estimate of its size instead of counting every row.
ESTIMATE_ABOVE = 20_000
STYLESHEET = "images/console.css"


def badge(text: str, tone: str, title: str = ""):
    return format_html('<span class="dw-badge dw-badge--{}" title="{}">{}</span>', tone, title, text)


def health_badge(health: Health, title: str = ""):
    return badge(str(health), HEALTH_TONES[health], title)


def human_duration(seconds: float | None) -> str:
    """850 ms, 2.3 s, 1 min 12 s, 2 h 5 min."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def ago(moment: datetime | None):
    """'3 minutes ago', with the exact time on hover."""
    if moment is None:
        return "never"
    now = timezone.now()
    if abs((now - moment).total_seconds()) < 60:
        text = "just now"
    elif moment > now:
        text = f"in {timesince(now, moment)}"
    else:
        text = f"{timesince(moment, now)} ago"
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', moment.isoformat(), f"{local:%Y-%m-%d %H:%M:%S %Z}", text
    )


def shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def changelist_url(model, **filters) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def count_link(count: int, model, **filters):
    return format_html('<a href="{}">{}</a>', changelist_url(model, **filters), f"{count:,}")


class EstimatedCountPaginator(Paginator):
    """Counts exactly, except an unfiltered list of a big PostgreSQL table:
    there ``pg_class.reltuples`` (kept by autovacuum/ANALYZE) answers at once
    where COUNT(*) reads every row."""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [query.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > ESTIMATE_ABOVE:
                return int(row[0])
        return super().count


def distinct_values(model, field: str, limit: int = 100) -> list[str]:
    """The distinct values of an indexed column without reading every row:
    on PostgreSQL a recursive query walks the index once per value."""
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    if connection.vendor == "postgresql":
        sql = (
            f"WITH RECURSIVE found(v) AS ((SELECT {column} FROM {table} ORDER BY 1 LIMIT 1) "
            f"UNION ALL SELECT (SELECT {column} FROM {table} WHERE {column} > found.v ORDER BY 1 LIMIT 1) "
            f"FROM found WHERE found.v IS NOT NULL) SELECT v FROM found WHERE v IS NOT NULL LIMIT %s"
        )
    else:
        sql = f"SELECT DISTINCT {column} FROM {table} ORDER BY 1 LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


def values_filter(field: str, title: str, choices: tuple[str, ...] = ()) -> type[admin.SimpleListFilter]:
    """A list filter on one column: fixed ``choices``, or the column's values read
    from its index (Django's AllValuesFieldListFilter reads the whole table)."""

    class ValuesFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            values = choices or distinct_values(model_admin.model, field)
            return [(value, value or "(empty)") for value in values]

        def queryset(self, request, queryset):
            return queryset if self.value() is None else queryset.filter(**{field: self.value()})

    ValuesFilter.title = title
    return ValuesFilter


class ConsoleModelAdmin(admin.ModelAdmin):
    """Big lists: estimated totals, no second COUNT(*) for the "show all" link,
    a date drill-down from the first and last dates only."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    change_list_template = "admin/console/change_list.html"

    class Media:
        css = {"all": (STYLESHEET,)}

    def log(self, request, obj, message: str) -> None:
        """Record an operator's action in the object's admin history."""
        self.log_change(request, obj, message)
