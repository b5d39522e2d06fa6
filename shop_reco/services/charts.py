"""Small server-side SVG charts for the admin: no JavaScript, no CDN, readable without colour.

Every function returns an ``<svg>`` string (text escaped here; the caller marks it safe) with
``class="sr-chart"``, ``role="img"`` and a ``<title>``, and a ``<title>`` tooltip on each data point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#b7791f", "#e53e3e")
Formatter = Callable[[float], str]


def percent(value: float) -> str:
    return f"{value:.1%}" if abs(value) < 0.1 else f"{value:.0%}"


def number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def money(value: float) -> str:
    return f"{value:,.2f}"


def _nice_range(low: float, high: float, ticks: int = 4) -> tuple[float, float, float]:
    """Round axis bounds and a tick step that reads well (1, 2, 2.5, 5 times a power of ten)."""
    if not math.isfinite(low) or not math.isfinite(high):
        low, high = 0.0, 1.0
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _open(width: int, height: int, title: str, kind: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sr-chart sr-chart-{kind}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="16" font-size="13" font-weight="600" fill="#222">{escape(title)}</text>',
    ]


def _empty(width: int, height: int, title: str, kind: str, message: str) -> str:
    parts = _open(width, height, title, kind)
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="#777">'
        f"{escape(message)}</text>"
    )
    return "".join(parts) + "</svg>"


def line_chart(
    series: Mapping[str, Sequence[tuple[str, float | None]]],
    *,
    title: str,
    fmt: Formatter = number,
    width: int = 640,
    height: int = 240,
    zero_based: bool = True,
) -> str:
    """One line per series over shared categorical x labels (dates, version ids); None leaves a gap."""
    labels: list[str] = []
    for points in series.values():
        labels += [label for label, _ in points if label not in labels]
    values = [v for points in series.values() for _, v in points if v is not None and math.isfinite(v)]
    if not labels or not values:
        return _empty(width, height, title, "line", "No data yet")
    left, right, top, bottom = 56, 16, 28, 44 + 16 * math.ceil(len(series) / 4)
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high, step = _nice_range(min(values + ([0.0] if zero_based else [])), max(values))
    index = {label: i for i, label in enumerate(labels)}

    def x(label: str) -> float:
        return left + (plot_w * index[label] / (len(labels) - 1) if len(labels) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    parts = _open(width, height, title, "line")
    tick = low
    while tick <= high + step / 2:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#555">'
            f"{escape(fmt(tick))}</text>"
        )
        tick += step
    every = max(1, math.ceil(len(labels) / 8))
    for i, label in enumerate(labels):
        # Every n-th label and the last one, unless the last would overlap its neighbour.
        last = i == len(labels) - 1
        if (i % every == 0 and (last or len(labels) - 1 - i >= every / 2 or every == 1)) or last:
            parts.append(
                f'<text x="{x(label):.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#555">'
                f"{escape(label)}</text>"
            )
    for number_, (name, points) in enumerate(series.items()):
        colour = PALETTE[number_ % len(PALETTE)]
        segment: list[str] = []
        segments = [segment]
        for label, value in points:
            if value is None or not math.isfinite(value):
                segment = []
                segments.append(segment)
                continue
            segment.append(f"{x(label):.1f},{y(value):.1f}")
        for run in segments:
            if len(run) > 1:
                parts.append(
                    f'<polyline class="sr-series" fill="none" stroke="{colour}" stroke-width="2" '
                    f'points="{" ".join(run)}"/>'
                )
        for label, value in points:
            if value is not None and math.isfinite(value):
                parts.append(
                    f'<circle class="sr-point" cx="{x(label):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(name)}, {escape(label)}: {escape(fmt(value))}</title></circle>"
                )
        legend_x = left + (number_ % 4) * (plot_w / 4)
        legend_y = height - 8 - 16 * (math.ceil(len(series) / 4) - 1 - number_ // 4)
        parts.append(
            f'<rect x="{legend_x:.1f}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14:.1f}" y="{legend_y}" fill="#222">{escape(name)}</text>'
        )
    return "".join(parts) + "</svg>"


def interval_chart(
    rows: Sequence[tuple[str, float, float, float]],
    *,
    title: str,
    fmt: Formatter = number,
    width: int = 640,
    highlight: Sequence[bool] | None = None,
) -> str:
    """A forest plot, a row per (label, estimate, low, high); the first row's estimate is the reference."""
    if not rows:
        return _empty(width, 80, title, "interval", "No data yet")
    row_h = 30
    left, right, top = 120, 72, 30
    height = top + row_h * len(rows) + 28
    plot_w = width - left - right
    values = [v for row in rows for v in row[1:] if math.isfinite(v)]
    low, high, step = _nice_range(min([*values, 0.0]), max([*values, 0.0]))

    def x(value: float) -> float:
        return left + plot_w * (value - low) / (high - low)

    parts = _open(width, height, title, "interval")
    bottom = top + row_h * len(rows)
    tick = low
    while tick <= high + step / 2:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top}" y2="{bottom}" stroke="#eee"/>'
            f'<text x="{x(tick):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
            f"{escape(fmt(tick))}</text>"
        )
        tick += step
    reference = rows[0][1]
    parts.append(
        f'<line x1="{x(reference):.1f}" x2="{x(reference):.1f}" y1="{top}" y2="{bottom}" '
        'stroke="#999" stroke-dasharray="4 3"/>'
    )
    for i, (label, estimate, lo, hi) in enumerate(rows):
        colour = PALETTE[i % len(PALETTE)]
        cy = top + row_h * i + row_h / 2
        weight = "700" if highlight and i < len(highlight) and highlight[i] else "400"
        tip = f"{label}: {fmt(estimate)} ({fmt(lo)} to {fmt(hi)})"
        stroke = f'stroke="{colour}" stroke-width="2"'
        parts.append(
            f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" font-weight="{weight}" fill="#222">'
            f"{escape(label)}</text>"
            f'<g class="sr-interval"><title>{escape(tip)}</title>'
            f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" {stroke}/>'
            f'<line x1="{x(lo):.1f}" x2="{x(lo):.1f}" y1="{cy - 6:.1f}" y2="{cy + 6:.1f}" {stroke}/>'
            f'<line x1="{x(hi):.1f}" x2="{x(hi):.1f}" y1="{cy - 6:.1f}" y2="{cy + 6:.1f}" {stroke}/>'
            f'<circle class="sr-point" cx="{x(estimate):.1f}" cy="{cy:.1f}" r="4.5" fill="{colour}"/></g>'
            f'<text x="{width - right + 6}" y="{cy + 4:.1f}" fill="#222">{escape(fmt(estimate))}</text>'
        )
    return "".join(parts) + "</svg>"


def bar_chart(
    rows: Sequence[tuple[str, float]], *, title: str, fmt: Formatter = number, width: int = 640
) -> str:
    """Horizontal bars, one per (label, value >= 0)."""
    rows = [(label, value) for label, value in rows if math.isfinite(value)]
    if not rows:
        return _empty(width, 80, title, "bar", "No data yet")
    row_h = 22
    left, right, top = 150, 80, 28
    height = top + row_h * len(rows) + 10
    top_value = max(max(value for _, value in rows), 0.0) or 1.0
    plot_w = width - left - right
    parts = _open(width, height, title, "bar")
    for i, (label, value) in enumerate(rows):
        y = top + row_h * i
        bar = plot_w * max(value, 0.0) / top_value
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" fill="#222">{escape(label)}</text>'
            f'<rect class="sr-bar" x="{left}" y="{y + 3}" width="{bar:.1f}" height="{row_h - 6}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
            f'<text x="{left + bar + 6:.1f}" y="{y + 14}" fill="#222">{escape(fmt(value))}</text>'
        )
    return "".join(parts) + "</svg>"
