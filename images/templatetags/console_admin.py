"""Template tags of the operators' console."""

from __future__ import annotations

import calendar
import datetime

from django import template
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst

register = template.Library()


def _local(value):
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        return timezone.localtime(value)
    return value


@register.inclusion_tag("admin/date_hierarchy.html")
def console_date_hierarchy(cl):
    """Django's date drill-down, built from the first and last dates alone.

    Django lists the distinct years, months or days present, which reads every
    row of a big table; here MIN and MAX come from the column's index and every
    year, month or day between them is offered (a few may hold no row). A
    search hides it: MIN/MAX of a rare match would walk the whole index.
    """
    if not cl.date_hierarchy or cl.query:
        return {"show": False}
    field = cl.date_hierarchy
    keys = (f"{field}__year", f"{field}__month", f"{field}__day")
    year, month, day = (cl.params.get(key) for key in keys)

    def link(filters):
        return cl.get_query_string(filters, [f"{field}__"])

    span = cl.queryset.aggregate(first=Min(field), last=Max(field))
    first, last = _local(span["first"]), _local(span["last"])
    if first is not None and not (year or month or day) and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month and day:
        chosen = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({keys[0]: year, keys[1]: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        y, m = int(year), int(month)
        days = range(first.day, last.day + 1) if first else range(1, calendar.monthrange(y, m)[1] + 1)
        return {
            "show": True,
            "back": {"link": link({keys[0]: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({keys[0]: year, keys[1]: month, keys[2]: d}),
                    "title": capfirst(formats.date_format(datetime.date(y, m, d), "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    if year:
        months = range(first.month, last.month + 1) if first else range(1, 13)
        return {
            "show": True,
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {
                    "link": link({keys[0]: year, keys[1]: m}),
                    "title": capfirst(
                        formats.date_format(datetime.date(int(year), m, 1), "YEAR_MONTH_FORMAT")
                    ),
                }
                for m in months
            ],
        }
    years = range(first.year, last.year + 1) if first else ()
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({keys[0]: str(y)}), "title": str(y)} for y in years],
    }
