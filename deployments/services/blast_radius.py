"""Blast radius (SPEC §1): the rolling budget of auto-executions a deployment may spend."""

import math
from datetime import datetime
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from deployments.locks import deployment_lock
from deployments.models import BlastRadiusUse, Deployment


def _payload_value(payload: dict[str, Any], field: str) -> int | None:
    """The budgeted amount of one payload: 0 when the field is absent, None when it is not a
    finite number (which fails closed: the action goes to a person)."""
    if not field or field not in payload:
        return 0
    value = payload[field]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return math.ceil(abs(value))


def blast_radius_reserve(
    *, deployment: Deployment, payload: dict[str, Any], now: datetime | None = None
) -> tuple[bool, str]:
    """Take one auto-execution (and its payload value) from the deployment's rolling budget.

    Returns (True, "") when the action may be auto-executed, else (False, why). Must run
    inside the caller's transaction: with limits configured it locks the deployment row
    (`SELECT ... FOR UPDATE`), so concurrent proposals reserve one after the other and the
    limit holds exactly; the reservation commits or rolls back with the proposal. Without
    limits it takes no lock. The locked row is also re-read for the kill switch and breaker.
    """
    if not deployment.has_blast_limits:
        return True, ""
    locked = deployment_lock(deployment.pk)
    if locked.fail_closed:
        return False, "the deployment is paused or its breaker has tripped"
    now = now or timezone.now()
    value = _payload_value(payload, locked.blast_value_field) if locked.blast_max_value is not None else 0
    if value is None:
        return False, f"payload field {locked.blast_value_field!r} is not a number; a value budget is set"
    in_window = BlastRadiusUse.objects.filter(deployment=locked, at__gt=now - locked.blast_window)
    if locked.blast_max_auto is not None:
        used = in_window.count()
        if used + 1 > locked.blast_max_auto:
            return False, f"blast radius: {used} auto-executions in the window (limit {locked.blast_max_auto})"
    if locked.blast_max_value is not None and value:
        spent = in_window.aggregate(total=Sum("value"))["total"] or 0
        if spent + value > locked.blast_max_value:
            return False, (
                f"blast radius: {locked.blast_value_field} {spent} + {value} would exceed {locked.blast_max_value}"
            )
    BlastRadiusUse.objects.create(deployment=locked, at=now, value=value)
    return True, ""


def blast_radius_purge(*, deployment_id: int, older_than: datetime) -> int:
    """Delete a deployment's budget rows that its window no longer reads. Safe to repeat."""
    deleted, _ = BlastRadiusUse.objects.filter(deployment_id=deployment_id, at__lt=older_than).delete()
    return deleted
