"""Circuit breakers (SPEC §3): tripping, checking and resetting. Their windows are read by
`deployments.breakers`."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.tasks import enqueue_on_commit
from core.updates import model_update
from deployments.breakers import breaker_reading
from deployments.counters import DEPLOYMENT_WIDE, Metric, evidence_add
from deployments.errors import InvalidTransition
from deployments.locks import deployment_lock
from deployments.models import Deployment
from deployments.permissions import require_admin
from deployments.policy import Stage
from deployments.services.audit import audit_event_record, reason_required


@transaction.atomic
def breaker_trip(*, deployment_id: int, reason: str, data: dict | None = None, now: datetime | None = None) -> bool:
    """Trip the breaker: routing fails closed at once; admins are notified after commit.

    Returns True when this call tripped it, False when it was already tripped (safe to repeat).
    """
    deployment = deployment_lock(deployment_id)
    if deployment.breaker_tripped:
        return False
    now = now or timezone.now()
    model_update(deployment, breaker_tripped_at=now, breaker_reason=reason[:500])
    evidence_add(deployment_id=deployment.pk, action_type=DEPLOYMENT_WIDE, metric=Metric.BREAKER_TRIPPED)
    event = audit_event_record(verb="deployments.breaker.tripped", obj=deployment, reason=reason, data=data or {})
    # After commit: the trip stands even if the broker is down; the failure is logged.
    enqueue_on_commit("deployments.breaker_notify", deployment.pk, event.pk, robust=True)
    if deployment.slack_channel:  # posted to the deployment's Slack channel too (integrations.slack)
        enqueue_on_commit("integrations.slack_breaker_tripped", deployment.pk, event.pk, robust=True)
    return True


def breaker_check(*, deployment: Deployment | int, now: datetime | None = None) -> bool:
    """Read the breaker's windows; trip it when a threshold is crossed (SPEC §3).

    Only stages 3 and 4 have breakers. Returns True when this call tripped it. Safe to repeat
    and to call inside another transaction (the trip is its own savepoint).
    """
    if not isinstance(deployment, Deployment):
        deployment = Deployment.objects.get(pk=deployment)
    if deployment.breaker_tripped or deployment.stage not in (Stage.SUPERVISED, Stage.AUTONOMOUS):
        return False
    reading = breaker_reading(deployment, now)
    if not reading.reasons:
        return False
    return breaker_trip(deployment_id=deployment.pk, reason="; ".join(reading.reasons), data=reading.as_dict(), now=now)


@transaction.atomic
def breaker_reset(*, deployment_id: int, actor: AbstractBaseUser, reason: str) -> Deployment:
    """An admin resets a tripped breaker (audited); the breaker's windows restart from now."""
    require_admin(actor, "reset a circuit breaker")
    reason = reason_required(reason, "reset the breaker")
    deployment = deployment_lock(deployment_id)
    if not deployment.breaker_tripped:
        raise InvalidTransition("the breaker is not tripped")
    tripped_at, tripped_reason = deployment.breaker_tripped_at, deployment.breaker_reason
    model_update(deployment, breaker_tripped_at=None, breaker_reason="", breaker_reset_at=timezone.now())
    audit_event_record(
        verb="deployments.breaker.reset",
        actor=actor,
        obj=deployment,
        reason=reason,
        data={"tripped_at": tripped_at.isoformat(), "tripped_reason": tripped_reason},
    )
    return deployment
