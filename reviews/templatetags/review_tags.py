"""Rendering helpers for review pages. Every value passes through format_html, so payload
content is always escaped."""

import json
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.jsonlimits import json_display

register = template.Library()

MAX_DEPTH = 12


def _tree(value: Any, depth: int) -> SafeString:
    if depth >= MAX_DEPTH:
        return format_html('<pre class="pv-deep">{}</pre>', json_display(value))
    if isinstance(value, dict):
        if not value:
            return mark_safe('<span class="pv-empty">{ }</span>')  # noqa: S308 -- a constant
        rows = format_html_join(
            "",
            '<tr><th scope="row">{}</th><td>{}</td></tr>',
            ((key, _tree(item, depth + 1)) for key, item in value.items()),
        )
        return format_html('<table class="pv-object">{}</table>', rows)
    if isinstance(value, list):
        if not value:
            return mark_safe('<span class="pv-empty">[ ]</span>')  # noqa: S308 -- a constant
        items = format_html_join("", "<li>{}</li>", ((_tree(item, depth + 1),) for item in value))
        return format_html('<ol class="pv-list" start="0">{}</ol>', items)
    if value is None or isinstance(value, bool):
        return format_html('<code class="pv-literal">{}</code>', json.dumps(value))
    if isinstance(value, int | float):
        return format_html('<span class="pv-number">{}</span>', value)
    return format_html('<span class="pv-string">{}</span>', str(value))


@register.filter
def payload_tree(value: Any) -> SafeString:
    """A JSON value as nested tables (objects) and numbered lists (arrays), all escaped."""
    return _tree(value, 0)
