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


def reliability_svg(*, bands: Sequence[dict], title: str, width: int = 360, height: int = 320) -> SafeString:
    """A reliability diagram: per confidence band, the observed rate (a dot at the band's mean
    confidence, its 95% interval as a bar) against the diagonal of perfect calibration.
    `bands` are deployments.calibration's (low, high, n, rate, lower, upper, mean_confidence)."""
    pad, pad_bottom = 36, 30
    plot_w, plot_h = width - pad - 10, height - pad_bottom - 24
    x0, y0 = pad, 24 + plot_h

    def px(x: float) -> float:
        return x0 + plot_w * x

    def py(y: float) -> float:
        return y0 - plot_h * y

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="{pad}" y="14" class="chart-title">{escape(title)}</text>',
        f'<rect x="{x0}" y="{py(1):.1f}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#dde1e7"/>',
        f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(1):.1f}" y2="{py(1):.1f}" stroke="#8a8f98" '
        'stroke-dasharray="4 3"><title>perfect calibration</title></line>',
    ]
    for tick in (0, 0.5, 1):
        parts.append(
            f'<text x="{px(tick):.1f}" y="{height - 14}" text-anchor="middle" class="chart-axis">{tick:g}</text>'
        )
        parts.append(f'<text x="{x0 - 4}" y="{py(tick) + 4:.1f}" text-anchor="end" class="chart-axis">{tick:g}</text>')
    parts.append(f'<text x="{px(0.5):.1f}" y="{height - 2}" text-anchor="middle" class="chart-axis">confidence</text>')
    most = max((b["n"] for b in bands), default=0) or 1
    for b in bands:
        if not b["n"]:
            continue
        x, colour = px(b["mean_confidence"]), PALETTE["executed"]
        label = (
            f"confidence {b['low']:g}–{b['high']:g}: {b['rate']:.1%} observed "
            f"[{b['lower']:.1%}, {b['upper']:.1%}], n {b['n']}, mean confidence {b['mean_confidence']:.3f}"
        )
        radius = 2.5 + 4.5 * (b["n"] / most) ** 0.5
        parts.append(
            f'<line x1="{x:.1f}" y1="{py(b["lower"]):.1f}" x2="{x:.1f}" y2="{py(b["upper"]):.1f}" stroke="{colour}"/>'
        )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{py(b["rate"]):.1f}" r="{radius:.1f}" fill="{colour}" fill-opacity="0.8">'
            f"<title>{escape(label)}</title></circle>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- built above, every label escaped
