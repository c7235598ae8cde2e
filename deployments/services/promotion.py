"""Promotion and demotion (SPEC §2): one stage up behind the gate and a second admin, any
stage down at once."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.updates import model_update
from deployments.errors import InvalidInput, InvalidTransition, NotAllowed
from deployments.gate import current_stage_for, gate_evaluate
from deployments.locks import deployment_lock
from deployments.models import Deployment, PromotionRequest
from deployments.permissions import require_admin
from deployments.policy import Stage
from deployments.services.audit import audit_event_record, reason_required


def _check_action_type(action_type: str) -> None:
    if action_type and len(action_type) > 100:
        raise InvalidInput("action_type is too long")


def _set_stage(deployment: Deployment, action_type: str, stage: Stage, now: datetime) -> None:
    """Move the deployment, or one action type's cap, to `stage`. Caller holds the row lock."""
    if action_type:
        caps = dict(deployment.stage_caps or {})
        entered = dict(deployment.stage_caps_entered_at or {})
        if stage.rank >= Stage(deployment.stage).rank:
            caps.pop(action_type, None)
            entered.pop(action_type, None)
        else:
            caps[action_type] = stage.value
            entered[action_type] = now.isoformat()
        model_update(deployment, stage_caps=caps, stage_caps_entered_at=entered)
        return
    # A cap at or above the new stage no longer caps anything.
    caps = {t: c for t, c in (deployment.stage_caps or {}).items() if Stage(c).rank < stage.rank}
    entered = {t: v for t, v in (deployment.stage_caps_entered_at or {}).items() if t in caps}
    model_update(deployment, stage=stage.value, stage_entered_at=now, stage_caps=caps, stage_caps_entered_at=entered)


def _cancel_open_requests(deployment: Deployment, action_type: str | None, actor: AbstractBaseUser, why: str) -> None:
    """Open requests whose starting stage no longer holds are cancelled (audited)."""
    qs = PromotionRequest.objects.select_for_update().filter(deployment=deployment, status=PromotionRequest.Status.OPEN)
    if action_type is not None:
        qs = qs.filter(action_type=action_type)
    for request in qs:
        model_update(request, status=PromotionRequest.Status.CANCELLED, decided_at=timezone.now(), decision_reason=why)
        audit_event_record(
            verb="deployments.promotion.cancelled", actor=actor, deployment=deployment, obj=request, reason=why
        )


@transaction.atomic
def deployment_promotion_request(
    *,
    deployment_id: int,
    actor: AbstractBaseUser,
    to_stage: Stage | str | None = None,
    action_type: str = "",
    reason: str = "",
) -> PromotionRequest:
    """An admin asks to move the deployment (or one action type) up exactly one stage.

    The gate is evaluated now and frozen into the request. Refused when it does not pass
    (the unmet criteria are named), when `to_stage` is not the next stage (no skipping), or
    when a request is already open for the same deployment and action type.
    """
    require_admin(actor, "request a promotion")
    _check_action_type(action_type)
    deployment = deployment_lock(deployment_id)
    current = current_stage_for(deployment, action_type)
    target = current.next
    if target is None:
        raise InvalidTransition(f"{deployment.slug} is already at the top stage ({current.value})")
    if to_stage is not None:
        try:
            wanted = Stage(to_stage)
        except ValueError:
            raise InvalidInput(f"unknown stage {to_stage!r}") from None
        if wanted is not target:
            raise InvalidTransition(
                f"promotion goes one step at a time: from {current.value} the next stage is {target.value}, "
                f"not {wanted.value}"
            )
    if PromotionRequest.objects.filter(
        deployment=deployment, action_type=action_type, status=PromotionRequest.Status.OPEN
    ).exists():
        raise InvalidTransition("a promotion request is already open; approve or reject it first")
    evaluation = gate_evaluate(deployment=deployment, action_type=action_type)
    if not evaluation.passed:
        missing = "; ".join(f"{c.label} ({c.status})" for c in evaluation.unmet)
        raise InvalidTransition(f"the gate to {target.value} is {evaluation.outcome}: {missing}")
    request = PromotionRequest.objects.create(
        deployment=deployment,
        action_type=action_type,
        from_stage=current.value,
        to_stage=target.value,
        requested_by=actor,
        request_reason=reason.strip(),
        evidence=evaluation.as_dict(),
    )
    audit_event_record(
        verb="deployments.promotion.requested",
        actor=actor,
        deployment=deployment,
        obj=request,
        reason=request.request_reason,
        data={"from": current.value, "to": target.value, "action_type": action_type, "evidence": request.evidence},
    )
    return request


def _lock_request(request_id: int) -> tuple[PromotionRequest, Deployment]:
    try:
        deployment_id = PromotionRequest.objects.values_list("deployment_id", flat=True).get(pk=request_id)
    except PromotionRequest.DoesNotExist:
        raise InvalidInput(f"promotion request {request_id} does not exist") from None
    deployment = deployment_lock(deployment_id)  # always the deployment first, then the request
    return PromotionRequest.objects.select_for_update().get(pk=request_id), deployment


def _lock_request_to_decide(
    *, request_id: int, actor: AbstractBaseUser, reason: str, verb: str, done: str, own: str
) -> tuple[PromotionRequest, Deployment, str]:
    """What approving and rejecting both check: an admin, a reason, the request (locked after
    its deployment) still open, and four-eyes. Returns the request, its deployment and the
    stripped reason."""
    require_admin(actor, f"{verb} a promotion")
    reason = reason_required(reason, f"{verb} a promotion")
    request, deployment = _lock_request(request_id)
    if not request.is_open:
        raise InvalidTransition(f"this request is {request.status}; only open requests can be {done}")
    if request.requested_by_id == actor.pk:
        raise NotAllowed(f"four-eyes: a different admin must {own} your own promotion request")
    return request, deployment, reason


@transaction.atomic
def deployment_promotion_approve(*, request_id: int, actor: AbstractBaseUser, reason: str) -> PromotionRequest:
    """A second admin approves: the stage changes now.

    Four-eyes: the requester may not approve. The gate is evaluated again at approval and
    must still pass (evidence can turn between request and approval, e.g. a failure spike);
    both evaluations stay on the request and in the audit log. The deployment (or type) must
    still be at the request's starting stage.
    """
    request, deployment, reason = _lock_request_to_decide(
        request_id=request_id, actor=actor, reason=reason, verb="approve", done="approved", own="approve"
    )
    if request.evidence.get("outcome") != "pass":
        raise InvalidTransition("the frozen evaluation did not pass; reject this request")
    current = current_stage_for(deployment, request.action_type)
    if current.value != request.from_stage:
        raise InvalidTransition(
            f"the stage is now {current.value}, not {request.from_stage} as requested; reject this request"
        )
    evaluation = gate_evaluate(deployment=deployment, action_type=request.action_type)
    if not evaluation.passed:
        missing = "; ".join(f"{c.label} ({c.status})" for c in evaluation.unmet)
        raise InvalidTransition(f"the gate no longer passes ({evaluation.outcome}): {missing}")
    now = timezone.now()
    request.status = PromotionRequest.Status.APPROVED
    request.decided_by = actor
    request.decided_at = now
    request.decision_reason = reason
    request.decision_evidence = evaluation.as_dict()
    request.save()
    _set_stage(deployment, request.action_type, Stage(request.to_stage), now)
    audit_event_record(
        verb="deployments.promotion.approved", actor=actor, deployment=deployment, obj=request, reason=reason
    )
    audit_event_record(
        verb="deployments.stage.promoted",
        actor=actor,
        obj=deployment,
        reason=reason,
        data={
            "from": request.from_stage,
            "to": request.to_stage,
            "action_type": request.action_type,
            "request": request.pk,
            "requested_by": request.requested_by.get_username(),
            "evidence": request.evidence,
            "evidence_at_approval": request.decision_evidence,
        },
    )
    return request


@transaction.atomic
def deployment_promotion_reject(*, request_id: int, actor: AbstractBaseUser, reason: str) -> PromotionRequest:
    """A second admin rejects an open request, with a reason. The requester may not decide it."""
    request, deployment, reason = _lock_request_to_decide(
        request_id=request_id, actor=actor, reason=reason, verb="reject", done="rejected", own="decide"
    )
    model_update(
        request,
        status=PromotionRequest.Status.REJECTED,
        decided_by=actor,
        decided_at=timezone.now(),
        decision_reason=reason,
    )
    audit_event_record(
        verb="deployments.promotion.rejected", actor=actor, deployment=deployment, obj=request, reason=reason
    )
    return request


@transaction.atomic
def deployment_demote(
    *, deployment_id: int, actor: AbstractBaseUser, to_stage: Stage | str, reason: str, action_type: str = ""
) -> Deployment:
    """Demote the deployment (or cap one action type) to any lower stage, at once. Admins only,
    with a reason. Open promotion requests it makes stale are cancelled."""
    require_admin(actor, "demote a deployment")
    reason = reason_required(reason, "demote")
    _check_action_type(action_type)
    try:
        target = Stage(to_stage)
    except ValueError:
        raise InvalidInput(f"unknown stage {to_stage!r}") from None
    deployment = deployment_lock(deployment_id)
    current = current_stage_for(deployment, action_type)
    if target.rank >= current.rank:
        raise InvalidTransition(f"demotion goes down: {target.value} is not below {current.value}")
    evidence = gate_evaluate(deployment=deployment, action_type=action_type).as_dict()
    deployment_demote_locked(
        deployment=deployment,
        to_stage=target,
        reason=reason,
        actor=actor,
        action_type=action_type,
        data={"evidence": evidence},
    )
    return deployment


def deployment_demote_locked(
    *,
    deployment: Deployment,
    to_stage: Stage,
    reason: str,
    actor: AbstractBaseUser | None = None,
    action_type: str = "",
    data: dict,
) -> None:
    """Demote the deployment (or cap one action type) to `to_stage` at once: by an admin
    (deployment_demote, which checks them) or by the system (re-certification, actor None).
    Precondition: the caller holds the row lock and `to_stage` is below the current stage.
    Open requests it makes stale are cancelled; audited with `data` beside from/to."""
    current = current_stage_for(deployment, action_type)
    _set_stage(deployment, action_type, to_stage, timezone.now())
    _cancel_open_requests(deployment, action_type or None, actor, f"demoted to {to_stage.value}")
    audit_event_record(
        verb="deployments.stage.demoted",
        actor=actor,
        obj=deployment,
        reason=reason,
        data={"from": current.value, "to": to_stage.value, "action_type": action_type, **data},
    )
