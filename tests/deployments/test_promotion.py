"""Promotion workflow (SPEC §2): request, four-eyes approval, no skipping, demotion, kill switch."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from deployments.errors import InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, Deployment, Member, PromotionRequest
from deployments.services import (
    deployment_demote,
    deployment_pause,
    deployment_promotion_approve,
    deployment_promotion_reject,
    deployment_promotion_request,
    deployment_resume,
    evidence_add,
)
from reviews.services import Proposal, proposed_action_create
from tests.deployments.test_gate import add, approval_evidence, make
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin2(db) -> Member:
    return MemberFactory(role=Member.Role.ADMIN)


@pytest.fixture
def ready():
    """An approval-stage deployment whose 2→3 gate passes."""
    d = make("approval")
    approval_evidence(d)
    return d


def test_request_freezes_the_evidence_and_another_admin_approves(ready, admin, admin2):
    req = deployment_promotion_request(deployment_id=ready.pk, actor=admin.user, reason="looks good")
    assert (req.from_stage, req.to_stage, req.status) == ("approval", "supervised", "open")
    assert req.evidence["outcome"] == "pass" and req.evidence["next_stage"] == "supervised"
    assert {c["name"] for c in req.evidence["criteria"]} >= {"human_decisions", "counterfactual_changed_upper"}
    ready.refresh_from_db()
    assert ready.stage == "approval"  # a request alone changes nothing

    before = timezone.now()
    approved = deployment_promotion_approve(request_id=req.pk, actor=admin2.user, reason="agreed")
    ready.refresh_from_db()
    assert approved.status == "approved" and approved.decided_by == admin2.user
    assert approved.decision_evidence["outcome"] == "pass"
    assert ready.stage == "supervised" and ready.stage_entered_at >= before
    promoted = AuditEvent.objects.get(verb="deployments.stage.promoted", deployment=ready)
    assert promoted.actor == admin2.user and promoted.reason == "agreed"
    assert promoted.data["requested_by"] == admin.user.username
    assert promoted.data["evidence"] == req.evidence
    assert AuditEvent.objects.filter(verb="deployments.promotion.requested", actor=admin.user).exists()


def test_four_eyes_nobody_approves_or_rejects_their_own_request(ready, admin):
    req = deployment_promotion_request(deployment_id=ready.pk, actor=admin.user)
    with pytest.raises(NotAllowed, match="four-eyes"):
        deployment_promotion_approve(request_id=req.pk, actor=admin.user, reason="me")
    with pytest.raises(NotAllowed, match="four-eyes"):
        deployment_promotion_reject(request_id=req.pk, actor=admin.user, reason="me")
    ready.refresh_from_db()
    assert ready.stage == "approval"


def test_only_admins_request_and_decide(ready, admin, reviewer, senior):
    for member in (reviewer, senior):
        with pytest.raises(NotAllowed):
            deployment_promotion_request(deployment_id=ready.pk, actor=member.user)
    req = deployment_promotion_request(deployment_id=ready.pk, actor=admin.user)
    with pytest.raises(NotAllowed):
        deployment_promotion_approve(request_id=req.pk, actor=senior.user, reason="x")


def test_no_skipping_stages(ready, admin):
    with pytest.raises(InvalidTransition, match="one step at a time"):
        deployment_promotion_request(deployment_id=ready.pk, actor=admin.user, to_stage="autonomous")
    assert not PromotionRequest.objects.exists()
    with pytest.raises(InvalidInput):
        deployment_promotion_request(deployment_id=ready.pk, actor=admin.user, to_stage="moon")
    with pytest.raises(InvalidTransition, match="top stage"):
        deployment_promotion_request(deployment_id=make("autonomous").pk, actor=admin.user)


def test_unmet_criteria_block_the_request(admin):
    d = make("approval")
    add(d, "decision.approve", 10)
    with pytest.raises(InvalidTransition, match="inconclusive") as exc:
        deployment_promotion_request(deployment_id=d.pk, actor=admin.user)
    assert "human decisions" in str(exc.value)
    assert not PromotionRequest.objects.exists()


def test_approval_re_evaluates_the_gate(ready, admin, admin2):
    req = deployment_promotion_request(deployment_id=ready.pk, actor=admin.user)
    add(ready, "counterfactual.auto_changed", 30)  # humans changed would-be-auto actions since
    with pytest.raises(InvalidTransition, match="no longer passes"):
        deployment_promotion_approve(request_id=req.pk, actor=admin2.user, reason="ok")
    ready.refresh_from_db()
    assert ready.stage == "approval"
    rejected = deployment_promotion_reject(request_id=req.pk, actor=admin2.user, reason="evidence turned")
    assert rejected.status == "rejected"
    with pytest.raises(InvalidTransition):
        deployment_promotion_approve(request_id=req.pk, actor=admin2.user, reason="again")


def test_one_open_request_per_deployment_and_type(ready, admin):
    req = deployment_promotion_request(deployment_id=ready.pk, actor=admin.user)
    with pytest.raises(InvalidTransition, match="already open"):
        deployment_promotion_request(deployment_id=ready.pk, actor=admin.user)
    with pytest.raises(IntegrityError), transaction.atomic():
        PromotionRequest.objects.create(
            deployment=ready, from_stage="approval", to_stage="supervised", requested_by=admin.user, evidence={}
        )
    assert PromotionRequest.objects.filter(status="open").get() == req


def test_reasons_are_required_to_decide(ready, admin, admin2):
    req = deployment_promotion_request(deployment_id=ready.pk, actor=admin.user)
    with pytest.raises(InvalidInput):
        deployment_promotion_approve(request_id=req.pk, actor=admin2.user, reason=" ")
    with pytest.raises(InvalidInput):
        deployment_promotion_reject(request_id=req.pk, actor=admin2.user, reason="")


def test_demotion_to_any_lower_stage_is_immediate_and_cancels_open_requests(ready, admin):
    req = deployment_promotion_request(deployment_id=ready.pk, actor=admin.user)
    deployment_demote(deployment_id=ready.pk, actor=admin.user, to_stage="shadow", reason="incident 42")
    ready.refresh_from_db()
    req.refresh_from_db()
    assert ready.stage == "shadow" and req.status == "cancelled"
    event = AuditEvent.objects.get(verb="deployments.stage.demoted")
    assert event.reason == "incident 42" and event.data["from"] == "approval" and "evidence" in event.data
    with pytest.raises(InvalidTransition, match="demotion goes down"):
        deployment_demote(deployment_id=ready.pk, actor=admin.user, to_stage="shadow", reason="again")
    with pytest.raises(InvalidInput):
        deployment_demote(deployment_id=ready.pk, actor=admin.user, to_stage="shadow", reason="")


def test_demoting_from_autonomous_to_approval_routes_to_people(admin):
    d = make("autonomous")
    deployment_demote(deployment_id=d.pk, actor=admin.user, to_stage="approval", reason="audit findings")
    d.refresh_from_db()
    action = proposed_action_create(
        deployment=d, proposal=Proposal(action_type="x", payload={}, risk_score=0.0, confidence=1.0)
    )
    assert action.route == "review"


def test_per_action_type_demotion_and_promotion(admin, admin2):
    d = make("supervised")
    deployment_demote(deployment_id=d.pk, actor=admin.user, to_stage="approval", reason="refunds", action_type="r.x")
    d.refresh_from_db()
    assert d.stage == "supervised" and d.stage_caps == {"r.x": "approval"}
    # The type's window starts at the cap: backdate it and give it passing evidence.
    d.stage_caps_entered_at = {"r.x": (timezone.now() - timedelta(days=20)).isoformat()}
    d.save()
    for metric, n in [("decision.approve", 490), ("decision.edit", 10), ("counterfactual.auto", 200)]:
        evidence_add(deployment_id=d.pk, action_type="r.x", metric=metric, n=n)
    req = deployment_promotion_request(deployment_id=d.pk, actor=admin.user, action_type="r.x")
    assert (req.from_stage, req.to_stage, req.action_type) == ("approval", "supervised", "r.x")
    deployment_promotion_approve(request_id=req.pk, actor=admin2.user, reason="ok")
    d.refresh_from_db()
    assert d.stage_caps == {} and d.effective_stage("r.x") == "supervised"


def test_pause_and_resume_are_audited_and_safe_to_repeat(admin, reviewer):
    d = Deployment.objects.get(pk=reviewer.deployments.first().pk)
    with pytest.raises(NotAllowed):
        deployment_pause(deployment_id=d.pk, actor=reviewer.user, reason="x")
    deployment_pause(deployment_id=d.pk, actor=admin.user, reason="incident")
    deployment_pause(deployment_id=d.pk, actor=admin.user, reason="incident")
    d.refresh_from_db()
    assert d.paused
    action = proposed_action_create(
        deployment=d, proposal=Proposal(action_type="x", payload={}, risk_score=0.0, confidence=1.0)
    )
    assert action.route == "review" and action.decision == "wait"
    assert AuditEvent.objects.filter(verb="deployments.deployment.paused").count() == 1
    deployment_resume(deployment_id=d.pk, actor=admin.user, reason="fixed")
    d.refresh_from_db()
    assert not d.paused
    assert AuditEvent.objects.get(verb="deployments.deployment.resumed").reason == "fixed"
