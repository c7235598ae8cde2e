"""The lifecycle of SPEC §4 through reviews.services: each transition, its audit, its evidence."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, EvidenceCount, Member
from reviews.canonical import payload_sha256
from reviews.execution import (
    AlreadyReported,
    NotClaimed,
    proposed_action_execution_claim,
    proposed_action_report_result,
)
from reviews.models import Decision, ProposedAction
from reviews.services import (
    proposed_action_approve,
    proposed_action_escalate,
    proposed_action_expire,
    proposed_action_reject,
)
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory, action_propose

S = ProposedAction.Status
pytestmark = pytest.mark.django_db


def evidence(deployment, metric: str) -> int:
    return sum(EvidenceCount.objects.filter(deployment=deployment, metric=metric).values_list("n", flat=True))


def propose(deployment, **kw) -> ProposedAction:
    args = {
        "action_type": "refund.issue",
        "payload": {"amount_cents": 500},
        "risk_score": 0.1,
        "confidence": 0.99,
    }
    args.update(kw)
    return action_propose(deployment, **args)


@pytest.mark.parametrize(
    ("stage", "risk", "confidence", "route", "status", "decision"),
    [
        ("shadow", 0.1, 0.99, "shadow", "logged", "shadow"),
        ("approval", 0.1, 0.99, "review", "pending_review", "wait"),
        ("approval", 0.8, 0.99, "senior", "pending_senior", "wait"),
        ("supervised", 0.1, 0.99, "auto", "approved", "execute"),
        ("supervised", 0.3, 0.99, "review", "pending_review", "wait"),
        ("autonomous", 0.5, 0.5, "auto", "approved", "execute"),
    ],
)
def test_create_routes_by_stage(stage, risk, confidence, route, status, decision):
    deployment = DeploymentFactory(stage=stage)
    action = propose(deployment, risk_score=risk, confidence=confidence)
    assert (action.route, action.status, action.decision, action.stage) == (route, status, decision, stage)
    assert evidence(deployment, f"proposed.{route}") == 1
    event = AuditEvent.objects.get(object_id=str(action.pk))
    assert event.data["route"] == route
    if route == "auto":
        assert action.final_payload == action.payload
        assert action.payload_sha256 == payload_sha256({"amount_cents": 500})
    if status.startswith("pending"):
        assert action.expires_at is not None


def test_cap_holds_an_action_type_below_the_deployment_stage():
    deployment = DeploymentFactory(stage="supervised", stage_caps={"refund.issue": "approval"})
    assert propose(deployment).route == "review"
    assert propose(deployment, action_type="ticket.tag").route == "auto"


def test_paused_or_tripped_deployment_never_auto_executes():
    paused = DeploymentFactory(stage="autonomous", paused=True)
    tripped = DeploymentFactory(stage="supervised", breaker_tripped_at=timezone.now())
    assert propose(paused).route == "review"
    assert propose(tripped).route == "review"


def test_approve_unchanged_binds_the_payload_and_audits(reviewer):
    action = ProposedActionFactory(deployment=reviewer.deployments.first())
    approved = proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    assert approved.status == S.APPROVED and approved.decision == "execute"
    assert approved.final_payload == action.payload
    assert approved.payload_sha256 == payload_sha256(action.payload)
    decision = Decision.objects.get(action=action)
    assert decision.verb == "approve" and decision.actor == reviewer.user
    assert AuditEvent.objects.filter(verb="reviews.action.approved", object_id=str(action.pk)).count() == 1
    assert evidence(action.deployment, "decision.approve") == 1


def test_approve_with_edit_records_before_and_after(reviewer):
    action = ProposedActionFactory(deployment=reviewer.deployments.first(), payload={"amount_cents": 900})
    approved = proposed_action_approve(action_id=action.pk, actor=reviewer.user, payload={"amount_cents": 500})
    assert approved.final_payload == {"amount_cents": 500}
    assert approved.payload == {"amount_cents": 900}
    assert approved.payload_sha256 == payload_sha256({"amount_cents": 500})
    decision = Decision.objects.get(action=action)
    assert decision.verb == "edit"
    assert (decision.payload_before, decision.payload_after) == ({"amount_cents": 900}, {"amount_cents": 500})


def test_reject_needs_a_reason_and_is_final(reviewer):
    action = ProposedActionFactory(deployment=reviewer.deployments.first())
    with pytest.raises(InvalidInput):
        proposed_action_reject(action_id=action.pk, actor=reviewer.user, reason="  ")
    rejected = proposed_action_reject(action_id=action.pk, actor=reviewer.user, reason="wrong order")
    assert (rejected.status, rejected.decision, rejected.reason) == ("rejected", "reject", "wrong order")
    with pytest.raises(InvalidTransition):
        proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    with pytest.raises(InvalidTransition):
        proposed_action_reject(action_id=action.pk, actor=reviewer.user, reason="again")
    assert Decision.objects.filter(action=action).count() == 1


def test_escalate_moves_to_senior_queue_and_only_seniors_decide_it(reviewer, senior):
    action = ProposedActionFactory(deployment=reviewer.deployments.first())
    escalated = proposed_action_escalate(action_id=action.pk, actor=reviewer.user, reason="big amount")
    assert escalated.status == S.PENDING_SENIOR
    with pytest.raises(NotAllowed):
        proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    with pytest.raises(InvalidTransition):
        proposed_action_escalate(action_id=action.pk, actor=senior.user, reason="again")
    approved = proposed_action_approve(action_id=action.pk, actor=senior.user)
    assert approved.status == S.APPROVED
    assert [d.verb for d in Decision.objects.filter(action=action)] == ["escalate", "approve"]


def test_unassigned_reviewer_cannot_decide(deployment):
    outsider = MemberFactory(role=Member.Role.REVIEWER, deployments=[DeploymentFactory()])
    action = ProposedActionFactory(deployment=deployment)
    with pytest.raises(NotAllowed):
        proposed_action_approve(action_id=action.pk, actor=outsider.user)
    assert ProposedAction.objects.get(pk=action.pk).status == S.PENDING_REVIEW


def test_expire_only_after_the_deadline_and_safe_to_repeat(deployment):
    action = ProposedActionFactory(deployment=deployment, expires_at=timezone.now() + timedelta(minutes=5))
    assert proposed_action_expire(action_id=action.pk) is None
    later = timezone.now() + timedelta(minutes=6)
    expired = proposed_action_expire(action_id=action.pk, now=later)
    assert (expired.status, expired.decision) == ("expired", "expired")
    assert proposed_action_expire(action_id=action.pk, now=later) is None
    assert Decision.objects.filter(action=action, verb="expire").count() == 1
    assert AuditEvent.objects.filter(verb="reviews.action.expired", object_id=str(action.pk)).count() == 1


def test_result_is_bound_to_the_final_payload_hash(deployment):
    action = propose(deployment)
    with pytest.raises(NotClaimed):  # a result requires the execution claim
        proposed_action_report_result(action_id=action.pk, status="executed", payload_hash=action.payload_sha256)
    claimed, _ = proposed_action_execution_claim(action_id=action.pk)
    with pytest.raises(Conflict):
        proposed_action_report_result(action_id=action.pk, status="executed", payload_hash="0" * 64)
    done = proposed_action_report_result(
        action_id=action.pk,
        status="executed",
        payload_hash=action.payload_sha256,
        claim_key=claimed.execution_claim_key,
    )
    assert done.status == S.EXECUTED and done.executed_at is not None
    # The claim's own retry of the same report changes nothing...
    again = proposed_action_report_result(
        action_id=action.pk,
        status="executed",
        payload_hash=action.payload_sha256,
        claim_key=claimed.execution_claim_key,
    )
    assert again.executed_at == done.executed_at
    # ...any other second result is refused: one execution is never recorded for two.
    with pytest.raises(AlreadyReported):
        proposed_action_report_result(action_id=action.pk, status="executed", payload_hash=action.payload_sha256)
    with pytest.raises(AlreadyReported):
        proposed_action_report_result(action_id=action.pk, status="failed", payload_hash=action.payload_sha256)
    assert evidence(deployment, "execution.executed.auto") == 1


def test_result_refused_before_approval(reviewer):
    action = ProposedActionFactory(deployment=reviewer.deployments.first())
    with pytest.raises(InvalidTransition):
        proposed_action_report_result(action_id=action.pk, status="executed", payload_hash=action.proposal_sha256)


def test_rejected_stays_rejected_for_the_same_external_id(reviewer):
    deployment = reviewer.deployments.first()
    deployment.stage = "approval"
    deployment.save()
    first = propose(deployment, external_id="T-1")
    proposed_action_reject(action_id=first.pk, actor=reviewer.user, reason="no")
    with pytest.raises(Conflict):
        propose(deployment, external_id="T-1")
    # Another payload, or another external id, is a new proposal.
    assert propose(deployment, external_id="T-1", payload={"amount_cents": 400}).status == S.PENDING_REVIEW
    assert propose(deployment, external_id="T-2").status == S.PENDING_REVIEW


def test_counterfactual_counts_what_stage_3_would_have_auto_executed(reviewer):
    deployment = reviewer.deployments.first()
    deployment.stage = "approval"
    deployment.save()
    would_auto = propose(deployment, risk_score=0.1, confidence=0.99)
    would_review = propose(deployment, risk_score=0.5, confidence=0.99)
    proposed_action_approve(action_id=would_auto.pk, actor=reviewer.user, payload={"amount_cents": 1})
    proposed_action_approve(action_id=would_review.pk, actor=reviewer.user)
    assert evidence(deployment, "counterfactual.auto") == 1
    assert evidence(deployment, "counterfactual.auto_changed") == 1
