"""Moves nobody decided: a run releasing what it held, a parent refusing its children, a
double review splitting. No Decision row; one audit event from the system."""

from typing import Any

from core.updates import model_update
from deployments.services import audit_event_record
from reviews.models import ProposedAction


def action_system_move(action: ProposedAction, *, to: str, verb: str, data: dict[str, Any], **fields: Any) -> None:
    """Set the status `to` and `fields` (its `reason` among them, if any), save just those and
    audit `verb` with from, to and `data`. Precondition: the caller holds the row lock."""
    from_status = action.status
    model_update(action, status=to, **fields)
    reason = fields.get("reason", "")
    audit_event_record(
        verb=verb, actor_label="system", obj=action, reason=reason, data={"from": from_status, "to": to, **data}
    )
