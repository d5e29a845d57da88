"""Small charts rendered on the server as inline SVG, for the operators' console.

No script, no CDN and no inline style: colours are SVG presentation
attributes (overridable from ``console.css``), and every mark carries a
``<title>`` so hovering shows the number. The numbers are always also shown
as a table next to the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 268, 160
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 16, 26
OK, BAD, NEUTRAL, AXIS, GRID = "#2e7d32", "#c62828", "#1565c0", "#666666", "#dddddd"


@dataclass(frozen=True)
class Point:
    """One measurement over time; ``ok=False`` draws it as a failure."""

    at: datetime
    value: float
    ok: bool = True
    note: str = ""


@dataclass(frozen=True)
class Bar:
    """One bar of a 0..1 share (e.g. a day's operation success rate); None: no data."""

    label: str
    share: float | None
    note: str = ""


def _n(value: float) -> str:
    """A coordinate (format_html escapes its arguments to text before formatting)."""
    return f"{value:.1f}"


def compact(value: float) -> str:
    """Axis labels that fit: 950, 12.5k, 1.2M; fractions keep two digits."""
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if value and abs(value) < 10 and value != int(value):
        return f"{value:.2g}"
    return f"{value:.0f}"


def _frame(title: str, body: SafeString, legend: str = "") -> SafeString:
    return format_html(
        '<svg class="dw-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="{}" '
        'height="{}" role="img" aria-label="{}"><title>{}</title>{}{}</svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        title,
        title,
        body,
        format_html(
            '<text x="{}" y="{}" font-size="11" fill="{}" text-anchor="end">{}</text>',
            WIDTH - RIGHT,
            TOP - 2,
            AXIS,
            legend,
        )
        if legend
        else "",
    )


def _y_axis(top: float, fmt: Callable[[float], str]) -> SafeString:
    """Horizontal grid lines at 0, half and the top, with their labels."""
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1"/>'
                '<text x="{}" y="{}" font-size="11" fill="{}" text-anchor="end">{}</text>',
                LEFT,
                _n(y),
                WIDTH - RIGHT,
                _n(y),
                GRID if fraction else AXIS,
                LEFT - 6,
                _n(y + 4),
                AXIS,
                fmt(top * fraction),
            )
        )
    return mark_safe("".join(parts))  # each part was built with format_html


def _empty(title: str) -> SafeString:
    return _frame(
        title,
        format_html(
            '<text x="{}" y="{}" font-size="13" fill="{}" text-anchor="middle">No data yet</text>',
            WIDTH / 2,
            HEIGHT / 2,
            AXIS,
        ),
    )


def line_chart(
    points: Sequence[Point], *, title: str, fmt: Callable[[float], str] = compact, legend: str = ""
) -> SafeString:
    """Values over time: a line through the successful points, failures as red dots."""
    if not points:
        return _empty(title)
    points = sorted(points, key=lambda p: p.at)
    top = max(p.value for p in points) or 1.0
    start, end = points[0].at, points[-1].at
    span = (end - start).total_seconds() or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(p: Point) -> tuple[float, float]:
        x = LEFT + (plot_w * (p.at - start).total_seconds() / span if len(points) > 1 else plot_w / 2)
        return x, TOP + plot_h * (1 - p.value / top)

    coords = [xy(p) for p in points]
    stamp = "%H:%M:%S" if start.date() == end.date() else "%m-%d %H:%M"
    line = " ".join(f"{x:.1f},{y:.1f}" for (x, y), p in zip(coords, points, strict=True) if p.ok)
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="{}" fill="{}"><title>{}</title></circle>',
        (
            (_n(x), _n(y), 3 if p.ok else 4, NEUTRAL if p.ok else BAD, p.note or fmt(p.value))
            for (x, y), p in zip(coords, points, strict=True)
        ),
    )
    x_labels = format_html(
        '<text x="{}" y="{}" font-size="11" fill="{}">{}</text>'
        '<text x="{}" y="{}" font-size="11" fill="{}" text-anchor="end">{}</text>',
        LEFT,
        HEIGHT - 8,
        AXIS,
        f"{start:{stamp}}",
        WIDTH - RIGHT,
        HEIGHT - 8,
        AXIS,
        f"{end:{stamp}}",
    )
    polyline = (
        format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', line, NEUTRAL)
        if line.count(",") > 1
        else ""
    )
    body = format_html("{}{}{}{}", _y_axis(top, fmt), polyline, dots, x_labels)
    return _frame(title, body, legend)


def share_bars(bars: Sequence[Bar], *, title: str, legend: str = "") -> SafeString:
    """One bar per period: green for the share that succeeded, red for the rest."""
    if not any(b.share is not None for b in bars):
        return _empty(title)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(bars)
    width = max(2.0, slot * 0.7)
    marks = []
    for i, bar in enumerate(bars):
        x = LEFT + slot * i + (slot - width) / 2
        if bar.share is not None:
            ok_h = plot_h * bar.share
            marks.append(
                format_html(
                    '<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" '
                    'fill="{}"/><rect x="{}" y="{}" width="{}" height="{}" fill="{}"/></g>',
                    bar.note or f"{bar.label}: {bar.share:.0%}",
                    _n(x),
                    TOP,
                    _n(width),
                    _n(plot_h - ok_h),
                    BAD,
                    _n(x),
                    _n(TOP + plot_h - ok_h),
                    _n(width),
                    _n(ok_h),
                    OK,
                )
            )
        if i in (0, len(bars) - 1) or len(bars) <= 8:
            marks.append(
                format_html(
                    '<text x="{}" y="{}" font-size="11" fill="{}" text-anchor="middle">{}</text>',
                    _n(x + width / 2),
                    HEIGHT - 8,
                    AXIS,
                    bar.label,
                )
            )
    body = format_html("{}{}", _y_axis(1.0, lambda v: f"{v:.0%}"), mark_safe("".join(marks)))
    return _frame(title, body, legend)
