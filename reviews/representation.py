"""The one JSON shape of an action (SPEC §5), used by the API, webhooks and the client."""

from datetime import datetime
from typing import Any

from reviews.models import ProposedAction


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def action_representation(action: ProposedAction, *, deployment_slug: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": action.pk,
        "deployment": deployment_slug or action.deployment.slug,
        "action_type": action.action_type,
        "external_id": action.external_id or None,
        "status": action.status,
        "route": action.route,
        "stage": action.stage,
        "decision": action.decision,
        "payload": action.payload,
        "final_payload": action.final_payload,
        "payload_sha256": action.payload_sha256 or None,
        "risk_score": action.risk_score,
        "confidence": action.confidence,
        "needs_human": action.needs_human,
        "model_version": action.model_version or None,
        "reason": action.reason or None,
        "created_at": _iso(action.created_at),
        "decided_at": _iso(action.decided_at),
        "executed_at": _iso(action.executed_at),
        "error": action.result_error or None,
        # Shadow actions once compared: {"agree": bool, "diff": ...}; otherwise null.
        "comparison": action.comparison,
        # Issue 15: the agent's deadline, its run and its parent, and how many execution
        # claims the action has had (1 per approval; 2 after a "not committed" reconcile).
        "deadline": _iso(action.deadline),
        "run_id": action.run.key if action.run_id is not None else None,
        "parent_id": action.parent_id,
        "execution_claims": action.execution_claims,
        # Quorum (reviews/quorum.py): "1 of 2 approvals" is approvals 1, approvals_required 2.
        "approvals_required": action.approvals_required,
        "approvals": action.approvals_given,
    }
    return data
