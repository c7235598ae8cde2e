"""Presentation for people, shared by every page: times in words with the ISO time on hover,
rates as percentages (never e-notation), counts with separators, readable audit verbs."""

from datetime import UTC, datetime, timedelta

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


def _words(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        amount = f"{seconds} s"
    elif seconds < 3600:
        amount = f"{seconds // 60} min"
    elif seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        amount = f"{hours} h {minutes} min" if hours < 3 and minutes else f"{hours} h"
    else:
        days = seconds // 86400
        amount = f"{days} day{'s' if days != 1 else ''}"
    return f"in {amount}" if delta.total_seconds() < 0 else f"{amount} ago"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 days ago', 'in 4 h': how people say it."""
    if moment is None:
        return ""
    return _words((now or timezone.now()) - moment)


def moment_words(moment: datetime, now: datetime | None = None) -> str:
    """Within a day: relative ('5 min ago'); older: the date and time in UTC ('1 Dec 19:57 UTC',
    with the year when it is not this year)."""
    now = now or timezone.now()
    if abs(now - moment) < timedelta(hours=24):
        return ago(moment, now)
    utc = moment.astimezone(UTC)
    fmt = "%-d %b %H:%M UTC" if utc.year == now.year else "%-d %b %Y %H:%M UTC"
    return utc.strftime(fmt)


@register.filter
def when(moment: datetime | str | None) -> SafeString | str:
    """A <time> element: the moment in words, the exact ISO time (UTC) on hover. Takes an
    ISO string too (frozen evidence keeps its times as text)."""
    if isinstance(moment, str):
        moment = parse_datetime(moment)
    if not moment:
        return "—"
    iso = moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return format_html('<time datetime="{}" title="{}">{}</time>', iso, iso, moment_words(moment))


@register.filter(name="ago")
def ago_filter(moment: datetime | None) -> str:
    return ago(moment)


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """A rate as a percentage for people: 0.9123 → '91.2%', 1.2e-17 → '0%', 0.0004 → '< 0.1%',
    1.0 → '100%'; None → '—'."""
    if value is None or value == "":
        return "—"
    value = float(value)
    if abs(value) < 5e-9:
        return "0%"
    step = 10 ** -int(digits)
    shown = value * 100
    if 0 < shown < step:
        return f"< {step:g}%"
    if 100 - step < shown < 100:
        return f"> {100 - step:g}%"
    text = f"{shown:.{int(digits)}f}".rstrip("0").rstrip(".")
    return f"{text}%"


@register.filter
def count(value: int | float | None) -> str:
    """A count with thousands separators: 12345 → '12,345'; None → '—'."""
    if value is None or value == "":
        return "—"
    return f"{int(round(float(value))):,}"


VERB_WORDS = {
    "proposed": "proposed",
    "auto_approved": "executed by policy",
    "approved": "approved",
    "edited_and_approved": "approved with edits",
    "rejected": "rejected",
    "escalated": "escalated",
    "expired": "expired",
    "audit_verdict": "audit verdict",
    "created": "created",
    "promoted": "promoted",
    "demoted": "demoted",
    "requested": "promotion requested",
    "tripped": "breaker tripped",
    "reset": "breaker reset",
    "paused": "paused",
    "resumed": "resumed",
    "rotated": "rotated",
    "redelivered": "redelivered",
    "revoked": "revoked",
    "quorum_approval": "approved; more approvals needed (quorum)",
    "cancelled": "cancelled",
}


@register.filter
def verb_words(verb: str) -> str:
    """'reviews.action.edited_and_approved' → 'Action approved with edits'; unknown verbs are
    made readable the same way ('deployments.promotion.rejected' → 'Promotion rejected')."""
    parts = (verb or "").split(".")
    if len(parts) < 2:
        return verb
    subject, last = parts[-2], parts[-1]
    words = VERB_WORDS.get(last, last.replace("_", " "))
    return f"{subject.replace('_', ' ').capitalize()} {words}"


def _field(obj: object, name: str) -> object:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _is_rate(criterion: object) -> bool:
    """Rates have an interval, or a threshold strictly between 0 and 1; counts and days don't."""
    if _field(criterion, "lower") is not None or _field(criterion, "upper") is not None:
        return True
    threshold = _field(criterion, "threshold")
    return isinstance(threshold, float) and 0 < threshold < 1


@register.filter
def measure(criterion: object, name: str) -> str:
    """One of a gate criterion's numbers (`value`, `lower`, `upper`, `threshold`, `n`) for
    people: rates as percentages, days with one decimal, counts with separators."""
    value = _field(criterion, name)
    if value is None:
        return "—"
    if name == "n":
        return count(value)
    if _field(criterion, "name") == "days_in_stage":
        return f"{float(value):.1f} days"
    return (
        percent(value, 2 if _is_rate(criterion) and float(value) < 0.1 else 1) if _is_rate(criterion) else count(value)
    )


@register.filter
def actor_words(label: str) -> str:
    """'api-key:tl_ab12' → 'agent (key tl_ab12…)'; 'system' → 'Trustladder (automatic)';
    an empty label → 'Trustladder (automatic)'; usernames as they are."""
    if not label or label == "system":
        return "Trustladder (automatic)"
    if label.startswith("api-key:"):
        return f"agent (key {label.removeprefix('api-key:')}…)"
    return label


@register.filter
def event_actor(event) -> str:
    """Who did an audit event, in words: `actor_words`, and "X for Y" for a decision taken
    under an out-of-office delegation (its data's `on_behalf_of`)."""
    who = actor_words(event.actor_label)
    for_whom = (event.data or {}).get("on_behalf_of") if isinstance(event.data, dict) else None
    return f"{who} for {for_whom}" if isinstance(for_whom, str) and for_whom else who


# object_type → (URL name, how the id goes in, words). By name: no app imports another here.
OBJECT_LINKS = {
    "reviews.proposedaction": ("reviews:action_detail", "action_id", "action"),
    "deliveries.delivery": ("deliveries:detail", "delivery_id", "delivery"),
}


@register.simple_tag
def object_link(event: object) -> SafeString | str:
    """The audited object as a link where it has a page (actions, deliveries, deployments and
    their promotion requests), else in words."""
    object_type, object_id = event.object_type, event.object_id
    deployment = event.deployment if event.deployment_id else None
    if object_type in OBJECT_LINKS and str(object_id).isdigit():
        name, kwarg, words = OBJECT_LINKS[object_type]
        return format_html('<a href="{}">{} #{}</a>', reverse(name, kwargs={kwarg: int(object_id)}), words, object_id)
    if object_type == "deployments.deployment" and deployment is not None:
        return format_html(
            '<a href="{}">deployment {}</a>', reverse("deployments:detail", args=[deployment.slug]), deployment.slug
        )
    if object_type == "deployments.promotionrequest" and deployment is not None:
        url = reverse("deployments:gate", args=[deployment.slug])
        return format_html('<a href="{}#history">promotion request #{}</a>', url, object_id)
    if not object_type:
        return ""
    return f"{object_type.rsplit('.', 1)[-1]} #{object_id}" if object_id else object_type.rsplit(".", 1)[-1]


@register.simple_tag
def chart_rows(labels: list[str], series: dict[str, list[float]]) -> list[tuple[str, list[float]]]:
    """A chart's series turned into table rows: (label, [value of each series])."""
    return [(label, [values[i] for values in series.values()]) for i, label in enumerate(labels)]
