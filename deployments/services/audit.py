"""The audit log: every change is recorded by one appended event, in its own transaction."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from deployments.errors import InvalidInput
from deployments.models import AuditEvent, Deployment

SYSTEM = "system"


def audit_event_record(**fields: Any) -> AuditEvent:
    """Append one audit event (the fields of `audit_event_build`). Call inside the transaction
    of the change it records."""
    event = audit_event_build(**fields)
    event.save()
    return event


def audit_event_build(
    *,
    verb: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    deployment: Deployment | int | None = None,
    obj: object | None = None,
    reason: str = "",
    data: dict | None = None,
) -> AuditEvent:
    """The audit event `audit_event_record` appends, unsaved, for a caller that writes it
    with other rows in one statement (`reviews.ingest`). An unsaved `obj` gets its id there.

    Without `deployment`, the event belongs to `obj`'s deployment: `obj` itself when it is
    one, else its `deployment_id` (none for objects outside a deployment, such as members)."""
    if deployment is None and obj is not None:
        deployment = obj if isinstance(obj, Deployment) else getattr(obj, "deployment_id", None)
    deployment_id = deployment.pk if isinstance(deployment, Deployment) else deployment
    return AuditEvent(
        verb=verb,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label or (actor.get_username() if actor is not None else SYSTEM),
        deployment_id=deployment_id,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        reason=reason,
        data=data or {},
    )


def reason_required(reason: str, what: str) -> str:
    """The stripped reason the audit event records; InvalidInput when there is none."""
    if not reason or not reason.strip():
        raise InvalidInput(f"a reason is required to {what}")
    return reason.strip()
