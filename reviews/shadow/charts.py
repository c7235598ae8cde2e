"""Server-rendered SVG charts for the shadow report: plain geometry, no JavaScript, no CDN.

Each function turns evidence rows into coordinates; core/templates/shadow/_*.svg.html draw them.
"""

from datetime import date
from typing import Any

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28


def _y(rate: float, lo: float) -> float:
    """Map a rate in [lo, 1] to a y coordinate."""
    span = HEIGHT - TOP - BOTTOM
    return round(TOP + (1 - (rate - lo) / (1 - lo)) * span, 1)


def timeline_chart(by_day: dict[date, dict[str, Any]], *, target: float = 0.90) -> dict[str, Any] | None:
    """Agreement per day as a line with its 95% interval as a band, and the 0.90 target."""
    days = list(by_day.items())
    if not days:
        return None
    lo = min(0.5, min(v["lower"] for _, v in days))
    lo = max(0.0, (int(lo * 10)) / 10)
    inner = WIDTH - LEFT - RIGHT
    step = inner / max(1, len(days) - 1)

    def x(i: int) -> float:
        return round(LEFT + (i * step if len(days) > 1 else inner / 2), 1)

    points = [(x(i), _y(v["rate"], lo)) for i, (_, v) in enumerate(days)]
    upper = [(x(i), _y(v["upper"], lo)) for i, (_, v) in enumerate(days)]
    lower = [(x(i), _y(v["lower"], lo)) for i, (_, v) in enumerate(days)]
    ticks = [t / 10 for t in range(int(lo * 10), 11, 1 if lo >= 0.5 else 2)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "bottom": HEIGHT - BOTTOM,
        "line": " ".join(f"{px},{py}" for px, py in points),
        "band": " ".join(f"{px},{py}" for px, py in upper + lower[::-1]),
        "dots": [{"x": px, "y": py, "day": day, "e": v} for (px, py), (day, v) in zip(points, days, strict=True)],
        "target_y": _y(target, lo) if target >= lo else None,
        "target": target,
        "yticks": [{"y": _y(t, lo), "label": f"{t:.1f}"} for t in ticks],
        "first_day": days[0][0],
        "last_day": days[-1][0],
        "label_y": HEIGHT - 8,
    }


BAR_ROW = 26
BAR_LEFT = 190


def bars_chart(by_type: dict[str, dict[str, Any]], *, target: float = 0.85) -> dict[str, Any] | None:
    """Agreement per action type: a bar for the rate, a whisker for the 95% interval."""
    if not by_type:
        return None
    inner = WIDTH - BAR_LEFT - 70
    rows = []
    for i, (action_type, e) in enumerate(by_type.items()):
        y = TOP + i * BAR_ROW
        rows.append(
            {
                "type": action_type,
                "e": e,
                "y": y,
                "mid": y + 9,
                "text_y": y + 13,
                "w": round(e["rate"] * inner, 1),
                "x1": round(BAR_LEFT + e["lower"] * inner, 1),
                "x2": round(BAR_LEFT + e["upper"] * inner, 1),
                "met": e["lower"] >= target,
            }
        )
    height = TOP + len(rows) * BAR_ROW + 10
    return {
        "width": WIDTH,
        "height": height,
        "left": BAR_LEFT,
        "label_x": BAR_LEFT - 8,
        "n_x": BAR_LEFT + inner + 8,
        "rows": rows,
        "target_x": round(BAR_LEFT + target * inner, 1),
        "target": target,
    }
