"""Hypothesis properties of the action lifecycle (SPEC §4): random sequences of service calls,
by random actors, never reach an illegal state; terminal states stay terminal; every change
leaves exactly one audit event and (for people and the clock) one decision."""

import contextlib
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.errors import DomainError
from deployments.models import AuditEvent, Member
from reviews.canonical import payload_sha256
from reviews.execution import (
    proposed_action_cancel,
    proposed_action_execution_claim,
    proposed_action_reconcile,
    proposed_action_report_result,
)
from reviews.models import DECISIONS, Decision, ProposedAction
from reviews.services import (
    Proposal,
    proposed_action_approve,
    proposed_action_create,
    proposed_action_escalate,
    proposed_action_expire,
    proposed_action_reject,
)
from tests.factories import DeploymentFactory, MemberFactory

S = ProposedAction.Status
# Every legal move of SPEC §4 (shadow comparison is the shadow worker's, not exercised here).
# Issue 15: the execution claim, unknown results and their reconciliation, cancellation.
LEGAL = {
    S.PENDING_REVIEW: {S.APPROVED, S.REJECTED, S.PENDING_SENIOR, S.EXPIRED, S.CANCELLED},
    S.PENDING_SENIOR: {S.APPROVED, S.REJECTED, S.EXPIRED, S.CANCELLED},
    S.APPROVED: {S.EXECUTING, S.CANCELLED},
    S.EXECUTING: {S.EXECUTED, S.FAILED, S.UNKNOWN},
    S.UNKNOWN: {S.EXECUTED, S.APPROVED},
}
INITIAL = {"shadow": {S.LOGGED}, "auto": {S.APPROVED}, "review": {S.PENDING_REVIEW}, "senior": {S.PENDING_SENIOR}}
# Moves that a person or the clock makes, each recorded as one Decision.
DECIDED = {S.APPROVED, S.REJECTED, S.PENDING_SENIOR, S.EXPIRED}

OPS = [
    "approve",
    "approve_edited",
    "reject",
    "reject_blank",
    "escalate",
    "expire_early",
    "expire_late",
    "claim",
    "executed",
    "failed",
    "unknown",
    "result_wrong_hash",
    "reconcile_committed",
    "reconcile_not_committed",
    "claim_again",
    "cancel",
]
AGENT_OPS = {"expire_early", "expire_late", "claim", "claim_again", "cancel", "result_wrong_hash"}
AGENT_OPS |= {"executed", "failed", "unknown", "reconcile_committed", "reconcile_not_committed"}
ACTORS = st.sampled_from(["reviewer", "senior", "outsider"])
# Each example tries every operation once, in a random order and by random actors, then a few
# more at random: every reachable state meets many moves.
STEPS = st.tuples(
    st.permutations(OPS),
    st.lists(ACTORS, min_size=len(OPS), max_size=len(OPS)),
    st.lists(st.sampled_from(OPS), max_size=4),
).map(lambda t: [*zip(t[0], t[1], strict=True), *((op, "senior") for op in t[2])])


def apply(op: str, action: ProposedAction, actor) -> None:
    pk = action.pk
    if op == "approve":
        proposed_action_approve(action_id=pk, actor=actor)
    elif op == "approve_edited":
        proposed_action_approve(action_id=pk, actor=actor, payload={"edited": True}, reason="fixed the amount")
    elif op == "reject":
        proposed_action_reject(action_id=pk, actor=actor, reason="wrong customer")
    elif op == "reject_blank":
        proposed_action_reject(action_id=pk, actor=actor, reason="  ")
    elif op == "escalate":
        proposed_action_escalate(action_id=pk, actor=actor, reason="needs a senior")
    elif op == "expire_early":
        proposed_action_expire(action_id=pk, now=timezone.now())
    elif op == "expire_late":
        proposed_action_expire(action_id=pk, now=timezone.now() + timedelta(days=30))
    elif op in ("claim", "claim_again"):
        proposed_action_execution_claim(action_id=pk)
    elif op in ("executed", "failed", "unknown"):
        proposed_action_report_result(action_id=pk, status=op, payload_hash=action.payload_sha256 or "0" * 64)
    elif op.startswith("reconcile_"):
        proposed_action_reconcile(action_id=pk, committed=op == "reconcile_committed")
    elif op == "cancel":
        proposed_action_cancel(action_id=pk)
    elif op == "result_wrong_hash":
        proposed_action_report_result(action_id=pk, status="executed", payload_hash="f" * 64)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    # Weighted towards the queues, where most moves are.
    stage=st.sampled_from(["approval", "approval", "supervised", "autonomous", "shadow"]),
    risk=st.one_of(st.sampled_from([0.1, 0.3, 0.5, 0.7]), st.floats(0, 0.69), st.floats(0, 1)),
    confidence=st.one_of(st.sampled_from([0.5, 0.95, 0.99]), st.floats(0, 1)),
    needs_human=st.sampled_from([False, False, False, True]),
    steps=STEPS,
)
def test_random_service_calls_never_reach_an_illegal_state(stage, risk, confidence, needs_human, steps):
    deployment = DeploymentFactory(stage=stage)
    people = {
        "reviewer": MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment]).user,
        "senior": MemberFactory(role=Member.Role.SENIOR, deployments=[deployment]).user,
        "outsider": MemberFactory(role=Member.Role.SENIOR).user,  # not assigned to this deployment
    }
    action = proposed_action_create(
        deployment=deployment,
        proposal=Proposal(
            action_type="refund.issue",
            payload={"amount_cents": 1200},
            risk_score=risk,
            confidence=confidence,
            needs_human=needs_human,
        ),
    )
    assert action.status in INITIAL[action.route]
    changes = decisions = 0

    for op, who in steps:
        before = ProposedAction.objects.get(pk=action.pk)
        with contextlib.suppress(DomainError):  # refusals are expected; the state is checked below
            apply(op, before, people[who])
        after = ProposedAction.objects.get(pk=action.pk)
        if after.status != before.status:
            assert after.status in LEGAL.get(before.status, set()), f"{before.status} -> {after.status} by {op}"
            changes += 1
            decisions += after.status in DECIDED and before.is_pending
        if before.is_terminal:  # terminal stays terminal, untouched
            assert (after.status, after.final_payload, after.decided_at) == (
                before.status,
                before.final_payload,
                before.decided_at,
            )
        if who == "outsider" and op not in AGENT_OPS:
            assert after.status == before.status  # someone not assigned never decides
        if op == "result_wrong_hash":
            assert after.status == before.status

        # State invariants, after every step.
        assert after.decision == ("shadow" if after.route == "shadow" else DECISIONS[after.status])
        # Only an approved action, not yet claimed, ever says execute.
        assert (after.decision == "execute") == (after.status == S.APPROVED)
        if after.status in (S.APPROVED, S.EXECUTING, S.EXECUTED, S.FAILED, S.UNKNOWN):
            assert after.final_payload is not None
            assert after.payload_sha256 == payload_sha256(after.final_payload)
            assert after.decided_at is not None
        if after.is_pending:
            assert after.expires_at is not None and after.final_payload is None
        if after.status in (S.REJECTED, S.EXPIRED):
            assert after.decided_at is not None and after.final_payload is None and after.reason
        # One execution claim per approval: a second only after a "not committed" reconcile.
        reopened = AuditEvent.objects.filter(
            verb="reviews.action.reconciled", object_id=str(action.pk), data__committed=False
        ).count()
        assert after.execution_claims <= 1 + reopened

    assert Decision.objects.filter(action=action).count() == decisions
    # One audit event for the proposal, one per change.
    events = AuditEvent.objects.filter(object_type="reviews.proposedaction", object_id=str(action.pk))
    assert events.count() == 1 + changes
