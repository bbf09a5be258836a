"""Bar charts as inline SVG, drawn on the server: no script, no CDN, nothing to load.

The dashboard's Content-Security-Policy allows no script and no remote image; SVG elements
in the page are neither. Each chart scales to its container's width (viewBox), and each
bar carries a <title>, which browsers show as a tooltip and screen readers read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

# A phone-shaped drawing: at 390 px its 12-unit labels stay readable; CSS caps its width.
WIDTH, HEIGHT = 400, 200
LEFT, RIGHT, TOP, BOTTOM = 34, 6, 10, 24  # room for the axis labels
FONT = 'font-family="-apple-system, Helvetica, Arial, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: list[float]


def _nice_ceiling(value: float) -> int:
    """The top of the axis: 2, 4, 6, 8 or 10 times a power of ten, at or above `value`, so
    that the middle tick is a whole number too (the charts count things)."""
    power = 10 ** max(0, math.floor(math.log10(value))) if value > 0 else 1
    return next(step * power for step in (2, 4, 6, 8, 10) if value <= step * power)


def _number(value: float) -> str:
    return f"{value:,.0f}"


def bar_chart(
    title: str,
    labels: list[str],
    series: list[Series],
    *,
    stacked: bool = True,
    label_every: int = 1,
) -> Markup:
    """Bars per label, one segment (stacked) or one bar side by side (grouped) per series."""
    count = max(1, len(labels))
    totals = [
        sum(s.values[i] for s in series)
        if stacked
        else max((s.values[i] for s in series), default=0)
        for i in range(len(labels))
    ]
    top = _nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    gap = min(4.0, slot * 0.2)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" {FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, top / 2, top):
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#e5e5ea"/>'
            f'<text x="{LEFT - 4}" y="{ty + 4:.1f}" text-anchor="end" fill="#6c6c70">'
            f"{_number(tick)}</text>"
        )
    for i, label in enumerate(labels):
        x0 = LEFT + i * slot + gap / 2
        width = slot - gap
        base = 0.0
        for k, s in enumerate(series):
            value = s.values[i]
            if not value:
                continue
            if stacked:
                bx, bw, low, high = x0, width, base, base + value
                base = high
            else:
                bw = width / len(series)
                bx, low, high = x0 + k * bw, 0.0, value
            parts.append(
                f'<rect x="{bx:.1f}" y="{y(high):.1f}" width="{max(bw, 0.5):.1f}" '
                f'height="{max(y(low) - y(high), 0.5):.1f}" fill="{s.color}">'
                f"<title>{escape(label)}: {escape(s.name)} {_number(value)}</title></rect>"
            )
        if (count - 1 - i) % label_every == 0:  # counted from the newest, which is labelled
            # The outermost labels align with the plot's edges so that none is cut off.
            anchor, lx = "middle", LEFT + (i + 0.5) * slot
            if i == count - 1 and count > 1:
                anchor, lx = "end", WIDTH - RIGHT
            elif i == 0 and count > 1:
                anchor, lx = "start", LEFT
            parts.append(
                f'<text x="{lx:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" '
                f'fill="#6c6c70">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#8e8e93"/>'
    )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{s.color}"></i>{escape(s.name)} '
        f"({_number(sum(s.values))})</span>"
        for s in series
    )
    return Markup(
        f'<figure class="chart">{"".join(parts)}<figcaption>{legend}</figcaption></figure>'
    )
