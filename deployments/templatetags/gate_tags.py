"""Formatting for the gate and dashboards."""

from django import template

register = template.Library()


@register.filter
def pct(value: float | None, digits: int = 1) -> str:
    """0.9123 → "91.2%"; None → "—"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def num(value: float | int | None, digits: int = 4) -> str:
    """A number for a table: integers as is, floats rounded; None → "—"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.{int(digits)}g}"
    return f"{int(value)}"
