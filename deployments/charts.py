"""Server-rendered SVG charts for the dashboards: no JavaScript, no CDN.

Every label is escaped; the output is safe to put in a template with `|safe` (it is marked so).
"""

from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

PALETTE = {
    "approve": "#1f7a4a",
    "edit": "#5aa469",
    "reject": "#b3261e",
    "escalate": "#9a6700",
    "expire": "#8a8f98",
    "executed": "#2f5bd3",
    "failed": "#b3261e",
}


def stacked_bars_svg(
    *,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    title: str,
    width: int = 720,
    height: int = 180,
) -> SafeString:
    """Stacked bars, one per label (e.g. a day), one colour per series, with a legend."""
    pad_left, pad_bottom, pad_top = 36, 22, 22
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.75, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="{pad_left}" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" y2="{pad_top + plot_h}" stroke="#dde1e7"/>',
        f'<text x="{pad_left - 4}" y="{pad_top + 8}" text-anchor="end" class="chart-axis">{top:g}</text>',
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" text-anchor="end" class="chart-axis">0</text>',
    ]
    for i, label in enumerate(labels):
        x = pad_left + i * slot + (slot - bar_w) / 2
        y = pad_top + plot_h
        tip = [f"{label}"]
        for name, values in series.items():
            value = values[i]
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            colour = PALETTE.get(name, "#5b6676")
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(label)}: {escape(name)} {value:g}</title></rect>"
            )
            tip.append(f"{name} {value:g}")
        last = len(labels) - 1
        if i in (0, last) or (len(labels) > 10 and i % 7 == 0 and last - i > 3):
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle" class="chart-axis">'
                f"{escape(label)}</text>"
            )
    lx = width - 8
    for name in reversed(list(series)):
        lx -= 8 + 7 * len(name) + 14
        parts.append(f'<rect x="{lx}" y="5" width="10" height="10" fill="{PALETTE.get(name, "#5b6676")}"/>')
        parts.append(f'<text x="{lx + 14}" y="14" class="chart-axis">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- built above, every label escaped
