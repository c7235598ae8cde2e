"""Issue 15 through reviews.execution and its API: the execution claim (granted once), results
executed / failed / unknown, reconciliation, cancellation and the agent's deadline. Every
transition is called twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, EvidenceCount
from reviews.execution import (
    ActionCancelled,
    ActionExpired,
    AlreadyClaimed,
    AlreadyReported,
    NotClaimed,
    proposed_action_cancel,
    proposed_action_deadline_expire,
    proposed_action_execution_claim,
    proposed_action_reconcile,
    proposed_action_report_result,
)
from reviews.models import ProposedAction
from reviews.services import proposed_action_approve, proposed_action_decide
from reviews.tasks import expire_overdue_actions
from tests.conftest import proposal
from tests.factories import DeploymentFactory, action_propose

S = ProposedAction.Status
pytestmark = pytest.mark.django_db


def propose(deployment, **kw) -> ProposedAction:
    fields = {"action_type": "refund.issue", "payload": {"amount_cents": 1200}, "risk_score": 0.1, "confidence": 0.99}
    return action_propose(deployment, **{**fields, **kw})


def events(action, verb: str) -> int:
    return AuditEvent.objects.filter(verb=verb, object_id=str(action.pk)).count()


def evidence(deployment, metric: str) -> int:
    return sum(EvidenceCount.objects.filter(deployment=deployment, metric=metric).values_list("n", flat=True))


def claim(action, key: str = "") -> ProposedAction:
    return proposed_action_execution_claim(action_id=action.pk, claim_key=key)[0]


def report(action, status: str, key: str = "") -> ProposedAction:
    return proposed_action_report_result(
        action_id=action.pk, status=status, payload_hash=action.payload_sha256, claim_key=key
    )


# -- the claim ------------------------------------------------------------------------------


def test_the_claim_is_granted_once_and_only_its_key_is_answered_again(deployment):
    action = propose(deployment)
    assert action.decision == "execute"
    claimed = claim(action, "k-1")
    assert (claimed.status, claimed.decision, claimed.execution_claims) == (S.EXECUTING, "claimed", 1)
    again, replayed = proposed_action_execution_claim(action_id=action.pk, claim_key="k-1")
    assert replayed and again.execution_claims == 1
    for other in ("", "k-2"):
        with pytest.raises(AlreadyClaimed):
            claim(action, other)
    assert events(action, "reviews.action.execution_claimed") == 1
    assert evidence(deployment, "lifecycle.claimed") == 1


def test_a_claim_without_a_key_gets_a_random_one(deployment):
    a, b = propose(deployment), propose(deployment)
    key_a = claim(a).execution_claim_key
    assert len(key_a) >= 24 and claim(b).execution_claim_key != key_a


def test_nothing_but_an_approved_action_can_be_claimed(deployment, reviewer):
    pending = propose(deployment, risk_score=0.5)
    with pytest.raises(InvalidTransition):
        claim(pending)
    proposed_action_cancel(action_id=pending.pk)
    with pytest.raises(ActionCancelled):
        claim(pending)
    shadow = propose(DeploymentFactory(stage="shadow"))
    with pytest.raises(InvalidTransition):
        claim(shadow)


def test_a_claim_with_another_payload_hash_claims_nothing(deployment):
    action = propose(deployment)
    with pytest.raises(Conflict):
        proposed_action_execution_claim(action_id=action.pk, payload_hash="0" * 64)
    assert ProposedAction.objects.get(pk=action.pk).status == S.APPROVED


# -- results ------------------------------------------------------------------------------------


def test_a_result_needs_the_claim_and_a_second_result_is_refused(deployment):
    action = propose(deployment)
    with pytest.raises(NotClaimed):
        report(action, "executed")
    claim(action, "k")
    with pytest.raises(Conflict):  # someone else's claim key
        report(action, "executed", "other")
    done = report(action, "executed", "k")
    assert (done.status, done.decision) == (S.EXECUTED, "done")
    assert report(action, "executed", "k").executed_at == done.executed_at  # the claim's own retry
    for status, key in (("executed", ""), ("failed", "k"), ("unknown", "k")):
        with pytest.raises(AlreadyReported):
            report(action, status, key)
    assert events(action, "reviews.action.executed") == 1
    assert evidence(deployment, "execution.executed.auto") == 1


def test_failed_is_recorded_with_its_error(deployment):
    action = propose(deployment)
    claim(action)
    failed = proposed_action_report_result(
        action_id=action.pk, status="failed", payload_hash=action.payload_sha256, error="provider down"
    )
    assert (failed.status, failed.decision, failed.result_error) == (S.FAILED, "done", "provider down")
    assert evidence(deployment, "execution.failed.auto") == 1


def test_a_result_other_than_the_three_is_invalid(deployment):
    action = propose(deployment)
    claim(action)
    with pytest.raises(InvalidInput):
        report(action, "done")


# -- unknown and reconciliation -----------------------------------------------------------------


def test_unknown_is_never_offered_again_until_reconciled_not_committed_then_once_more(deployment):
    action = propose(deployment)
    claim(action, "first")
    unknown = report(action, "unknown", "first")
    assert (unknown.status, unknown.decision) == (S.UNKNOWN, "reconcile")
    assert evidence(deployment, "lifecycle.unknown") == 1
    assert evidence(deployment, "execution.executed.auto") + evidence(deployment, "execution.failed.auto") == 0
    with pytest.raises(AlreadyClaimed):
        claim(action, "second")
    reopened = proposed_action_reconcile(action_id=action.pk, committed=False, reason="provider says no")
    assert (reopened.status, reopened.decision, reopened.execution_claim_key) == (S.APPROVED, "execute", "")
    with pytest.raises(InvalidTransition):  # twice: only an unknown result is reconciled
        proposed_action_reconcile(action_id=action.pk, committed=False)
    second = claim(action, "second")
    assert second.execution_claims == 2
    with pytest.raises(AlreadyClaimed):
        claim(action, "third")
    assert report(action, "executed", "second").status == S.EXECUTED
    assert events(action, "reviews.action.reconciled") == 1
    assert evidence(deployment, "execution.executed.auto") == 1


def test_unknown_reconciled_committed_counts_as_executed(deployment):
    action = propose(deployment)
    claim(action)
    report(action, "unknown")
    done = proposed_action_reconcile(action_id=action.pk, committed=True)
    assert (done.status, done.decision) == (S.EXECUTED, "done")
    with pytest.raises(InvalidTransition):
        proposed_action_reconcile(action_id=action.pk, committed=True)
    assert evidence(deployment, "execution.executed.auto") == 1


def test_only_an_admin_reconciles_in_the_browser_and_with_a_reason(deployment, reviewer, admin):
    action = propose(deployment)
    claim(action)
    report(action, "unknown")
    with pytest.raises(NotAllowed):
        proposed_action_reconcile(action_id=action.pk, committed=True, actor=reviewer.user, reason="sure")
    with pytest.raises(InvalidInput):
        proposed_action_reconcile(action_id=action.pk, committed=True, actor=admin.user, reason=" ")
    done = proposed_action_reconcile(action_id=action.pk, committed=True, actor=admin.user, reason="ledger shows it")
    assert done.status == S.EXECUTED
    event = AuditEvent.objects.get(verb="reviews.action.reconciled", object_id=str(action.pk))
    assert event.actor == admin.user and event.reason == "ledger shows it" and event.data["committed"] is True


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_a_pending_action_leaves_the_queue_and_refuses_a_later_decision(deployment, reviewer):
    action = propose(deployment, risk_score=0.5)
    assert ProposedAction.objects.in_review_queue().filter(pk=action.pk).exists()
    cancelled = proposed_action_cancel(action_id=action.pk, reason="the customer called back")
    assert (cancelled.status, cancelled.decision, cancelled.reason) == (
        S.CANCELLED,
        "cancelled",
        "the customer called back",
    )
    assert proposed_action_cancel(action_id=action.pk).status == S.CANCELLED  # safe to repeat
    assert not ProposedAction.objects.in_review_queue().filter(pk=action.pk).exists()
    with pytest.raises(InvalidTransition):
        proposed_action_decide(action_id=action.pk, actor=reviewer.user, decision="approve")
    assert events(action, "reviews.action.cancelled") == 1
    assert evidence(deployment, "lifecycle.cancelled") == 1


def test_cancel_an_approved_action_before_its_claim_but_not_after(deployment):
    before = propose(deployment)
    assert proposed_action_cancel(action_id=before.pk).status == S.CANCELLED
    with pytest.raises(ActionCancelled):
        claim(before)
    after = propose(deployment)
    claim(after)
    with pytest.raises(InvalidTransition):
        proposed_action_cancel(action_id=after.pk)


# -- deadlines ------------------------------------------------------------------------------------


def test_a_deadline_past_the_sla_or_in_the_past_is_refused(deployment):
    now = timezone.now()
    longest = max(deployment.review_sla, deployment.senior_sla)
    with pytest.raises(InvalidInput, match="SLA"):
        propose(deployment, deadline=now + longest + timedelta(minutes=1))
    with pytest.raises(InvalidInput, match="passed"):
        propose(deployment, deadline=now - timedelta(seconds=1))
    assert not ProposedAction.objects.exists()


def test_a_pending_action_expires_at_its_deadline_before_its_sla(deployment):
    deadline = timezone.now() + timedelta(minutes=5)
    action = propose(deployment, risk_score=0.5, deadline=deadline)
    assert action.expires_at == deadline and action.deadline == deadline
    expire_overdue_actions()
    assert ProposedAction.objects.get(pk=action.pk).status == S.PENDING_REVIEW
    from reviews.services import proposed_action_expire

    expired = proposed_action_expire(action_id=action.pk, now=deadline + timedelta(seconds=1))
    assert (expired.status, expired.decision) == (S.EXPIRED, "expired")
    assert "deadline" in expired.reason


def test_a_late_approval_never_makes_a_timed_out_call_executable(deployment, reviewer):
    deployment.stage = "approval"
    deployment.save()
    deadline = timezone.now() + timedelta(minutes=5)
    action = propose(deployment, deadline=deadline)
    approved = proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    assert approved.status == S.APPROVED
    later = deadline + timedelta(seconds=1)
    assert proposed_action_deadline_expire(action_id=action.pk, now=deadline - timedelta(seconds=1)) is None
    expired = proposed_action_deadline_expire(action_id=action.pk, now=later)
    assert (expired.status, expired.decision) == (S.EXPIRED, "expired")
    assert proposed_action_deadline_expire(action_id=action.pk, now=later) is None  # twice: nothing more
    with pytest.raises(ActionExpired):
        claim(action)
    assert events(action, "reviews.action.expired") == 1


def test_the_sweep_expires_approved_actions_past_their_deadline(deployment, monkeypatch):
    action = propose(deployment, deadline=timezone.now() + timedelta(seconds=30))
    ProposedAction.objects.filter(pk=action.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert expire_overdue_actions() == 1
    assert ProposedAction.objects.get(pk=action.pk).status == S.EXPIRED
    assert expire_overdue_actions() == 0


# -- the API ------------------------------------------------------------------------------------


def test_api_claim_result_and_a_second_claim_refused(api):
    created = api.post("/api/v1/actions", proposal()).json()
    url = f"/api/v1/actions/{created['id']}"
    first = api.post(f"{url}/claim", {"claim_key": "agent-1"})
    assert first.status_code == 200
    body = first.json()
    assert (body["status"], body["decision"], body["claim_key"], body["execution_claims"]) == (
        "executing",
        "claimed",
        "agent-1",
        1,
    )
    assert api.post(f"{url}/claim", {"claim_key": "agent-1"}).status_code == 200  # its own retry
    second = api.post(f"{url}/claim", {})
    assert second.status_code == 409 and second.json()["error"] == "already_claimed"
    result = {"status": "executed", "payload_sha256": created["payload_sha256"], "claim_key": "agent-1"}
    assert api.post(f"{url}/result", result).json()["decision"] == "done"
    twice = api.post(f"{url}/result", {**result, "claim_key": ""})
    assert twice.status_code == 409 and twice.json()["error"] == "already_reported"
    assert api.get(url).json()["decision"] == "done"


def test_api_claim_takes_no_body_too(api):
    created = api.post("/api/v1/actions", proposal()).json()
    r = api.client.post(
        f"/api/v1/actions/{created['id']}/claim", HTTP_AUTHORIZATION=f"Bearer {api.key}", content_type=""
    )
    assert r.status_code == 200 and r.json()["status"] == "executing"


def test_api_result_before_the_claim_is_409_not_claimed(api):
    created = api.post("/api/v1/actions", proposal()).json()
    r = api.post(
        f"/api/v1/actions/{created['id']}/result", {"status": "executed", "payload_sha256": created["payload_sha256"]}
    )
    assert r.status_code == 409 and r.json()["error"] == "not_claimed"


def test_api_unknown_then_reconcile(api):
    created = api.post("/api/v1/actions", proposal()).json()
    url = f"/api/v1/actions/{created['id']}"
    api.post(f"{url}/claim", {})
    r = api.post(f"{url}/result", {"status": "unknown", "payload_sha256": created["payload_sha256"]})
    assert r.json()["decision"] == "reconcile"
    assert api.post(f"{url}/reconcile", {"committed": "no"}).status_code == 422  # strictly a boolean
    assert api.post(f"{url}/reconcile", {"committed": 0}).status_code == 422
    r = api.post(f"{url}/reconcile", {"committed": False, "reason": "not in the ledger"})
    assert r.status_code == 200 and r.json()["decision"] == "execute"
    again = api.post(f"{url}/reconcile", {"committed": False})
    assert again.status_code == 409


def test_api_cancel(api):
    created = api.post("/api/v1/actions", proposal(risk_score=0.5)).json()
    url = f"/api/v1/actions/{created['id']}"
    r = api.post(f"{url}/cancel", {"reason": "changed my mind"})
    assert r.status_code == 200 and r.json()["decision"] == "cancelled"
    assert api.post(f"{url}/cancel", {}).status_code == 200
    assert api.post(f"{url}/claim", {}).json()["error"] == "cancelled"
    assert api.post(f"{url}/cancel", {"reason": "a\u0000b"}).status_code == 422


def test_api_deadline_expires_in_and_expires_at(api, deployment):
    r = api.post("/api/v1/actions", proposal(risk_score=0.5, expires_in=60))
    assert r.status_code == 201 and r.json()["deadline"] is not None
    too_far = api.post("/api/v1/actions", proposal(expires_in=int(deployment.review_sla.total_seconds()) + 60))
    assert too_far.status_code == 422 and "SLA" in too_far.json()["detail"]
    both = api.post("/api/v1/actions", proposal(expires_in=60, expires_at="2099-01-01T00:00:00Z"))
    assert both.status_code == 422
    naive = api.post("/api/v1/actions", proposal(expires_at="2026-12-01T00:00:00"))
    assert naive.status_code == 422
    at = (timezone.now() + timedelta(minutes=10)).isoformat()
    assert api.post("/api/v1/actions", proposal(expires_at=at)).status_code == 201


def test_api_read_after_the_deadline_is_expired_even_before_the_sweep(api):
    created = api.post("/api/v1/actions", proposal(expires_in=60)).json()
    ProposedAction.objects.filter(pk=created["id"]).update(deadline=timezone.now() - timedelta(seconds=1))
    read = api.get(f"/api/v1/actions/{created['id']}").json()
    assert (read["status"], read["decision"]) == ("expired", "expired")
    r = api.post(f"/api/v1/actions/{created['id']}/claim", {})
    assert r.status_code == 409 and r.json()["error"] == "expired"


def test_api_replay_is_the_stored_201_and_the_current_state_is_one_read_away(api):
    headers = {"Idempotency-Key": "replay-1"}
    first = api.post("/api/v1/actions", proposal(), headers=headers).json()
    url = f"/api/v1/actions/{first['id']}"
    api.post(f"{url}/claim", {})
    api.post(f"{url}/result", {"status": "executed", "payload_sha256": first["payload_sha256"]})
    replay = api.post("/api/v1/actions", proposal(), headers=headers)
    assert replay["Idempotent-Replayed"] == "true" and replay.json()["decision"] == "execute"  # as first answered
    assert api.post(f"{url}/claim", {}).json()["error"] == "already_claimed"  # a stale execute runs nothing
    assert api.get(url).json()["decision"] == "done"


def test_other_deployments_actions_are_404(api):
    other = propose(DeploymentFactory(stage="supervised"))
    for path in ("claim", "cancel", "result", "reconcile"):
        body = {"status": "executed", "payload_sha256": "a" * 64, "committed": True}
        assert api.post(f"/api/v1/actions/{other.pk}/{path}", body).status_code == 404
