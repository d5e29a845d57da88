"""Server-side SVG charts and the console's number formats (pure functions)."""

from datetime import UTC, datetime, timedelta

import pytest

from images import charts
from images.admin.common import human_duration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_line_through_the_successes_and_red_failures():
    points = [
        charts.Point(T0, 10.0),
        charts.Point(T0 + timedelta(minutes=5), 40.0, ok=False, note="<script>alert(1)</script>"),
        charts.Point(T0 + timedelta(minutes=10), 20.0),
    ]
    svg = charts.line_chart(points, title="Sync duration")
    assert svg.startswith('<svg class="dw-chart"') and svg.count("<circle") == 3
    assert svg.count(f'fill="{charts.BAD}"') == 1  # the failed run
    assert "<polyline" in svg and svg.count(",") >= 2
    assert "<script>" not in svg and "&lt;script&gt;" in svg  # notes are escaped
    assert ">40<" in svg and ">12:00:00<" in svg and ">12:10:00<" in svg  # top of the axis; same-day times
    assert "style=" not in svg and "on" + "load" not in svg  # nothing a CSP would block


def test_charts_without_data_say_so():
    assert "No data yet" in charts.line_chart([], title="Catalog size")
    assert "No data yet" in charts.share_bars([charts.Bar("03-01", None)], title="Success")


def test_share_bars_split_green_and_red():
    svg = charts.share_bars([charts.Bar("03-01", 0.75), charts.Bar("03-02", None)], title="Success")
    plot = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert f'height="{plot * 0.75:.1f}" fill="{charts.OK}"' in svg
    assert f'height="{plot * 0.25:.1f}" fill="{charts.BAD}"' in svg
    assert ">100%<" in svg and "03-01: 75%" in svg


@pytest.mark.parametrize(
    ("value", "text"), [(950, "950"), (12_500, "12k"), (1500, "1.5k"), (2_000_000, "2M"), (0.25, "0.25")]
)
def test_compact_axis_labels(value, text):
    assert charts.compact(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (0.85, "850 ms"), (2.34, "2.3 s"), (72, "1 min 12 s"), (120, "2 min"), (7500, "2 h 5 min")],
)
def test_readable_durations(seconds, text):
    assert human_duration(seconds) == text
