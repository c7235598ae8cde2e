"""Issue 15 with the real client against a live server: exactly once, exactly as approved,
whatever the agent does — replays, retries after a crash, second processes, unknown outcomes,
reconciliation, cancellation, timeouts, runs and parents (AgentBarrier's scenarios as a
checklist)."""

import threading
import uuid

import pytest
from trustladder_client import (
    ActionAlreadyClaimed,
    ActionCancelled,
    ActionExpired,
    ActionRejected,
    ApiError,
    DecisionTimeout,
    OutcomeUnknown,
)

from deployments.models import AuditEvent, Member
from reviews.execution import proposed_action_reconcile
from reviews.models import ProposedAction
from reviews.services import proposed_action_approve, proposed_action_reject
from tests.client.test_client import ORDER, Call, proposed
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db(transaction=True)
LOW = {"risk_score": 0.01, "confidence": 0.999}


def audits(action_id: int, verb: str) -> int:
    return AuditEvent.objects.filter(object_id=str(action_id), verb=verb).count()


def test_a_replayed_proposal_never_runs_the_function_twice(make_client):
    """The bug of issue 15: same Idempotency-Key again after the execution."""
    client, deployment = make_client("supervised")
    ran: list[dict] = []
    refund = client.gate("refund.issue", **LOW)(ran.append)
    key = f"crash-retry-{uuid.uuid4()}"
    refund(ORDER, idempotency_key=key)
    assert len(ran) == 1
    with pytest.raises(ActionAlreadyClaimed) as refused:  # the agent crashed after running, and retries
        refund(ORDER, idempotency_key=key)
    assert len(ran) == 1 and refused.value.action.decision == "done"
    (action,) = ProposedAction.objects.filter(deployment=deployment)
    assert (action.status, action.execution_claims) == ("executed", 1)
    assert audits(action.pk, "reviews.action.executed") == 1
    # The same body as the gate sent (its timeout is the deadline): a replay, read as it is now.
    replayed = client.propose("refund.issue", ORDER, idempotency_key=key, expires_in=3600, **LOW)
    assert replayed.replayed and replayed.decision == "done"  # the current state, not the stored 201


def test_two_processes_racing_on_one_approved_action_run_it_once(make_client):
    client, deployment = make_client("approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    ran: list[str] = []
    lock = threading.Lock()

    def work(name):
        def fn(payload):
            with lock:
                ran.append(name)

        return fn

    key = "shared-key"
    calls = [
        Call(client.run, work(name), "refund.issue", ORDER, timeout=30, idempotency_key=key, **LOW)
        for name in ("a", "b")
    ]
    action = proposed(deployment)
    proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    for call in calls:
        call.join()
    assert len(ran) == 1
    errors = [c.error for c in calls if c.error is not None]
    assert len(errors) == 1 and isinstance(errors[0], ActionAlreadyClaimed)
    assert ProposedAction.objects.get(pk=action.pk).execution_claims == 1


def test_the_second_executed_report_is_refused_never_a_silent_200(make_client):
    client, _ = make_client("supervised")
    action = client.propose("refund.issue", ORDER, **LOW)
    claim = client.claim(action.id, payload_sha256=action.payload_sha256)
    client.report_result(action.id, status="executed", payload_sha256=action.payload_sha256, claim_key=claim.claim_key)
    # The claim's own retry is answered; a report from anyone else is refused.
    same = client.report_result(
        action.id, status="executed", payload_sha256=action.payload_sha256, claim_key=claim.claim_key
    )
    assert same.status == "executed"
    with pytest.raises(ApiError) as refused:
        client.report_result(action.id, status="executed", payload_sha256=action.payload_sha256)
    assert (refused.value.status_code, refused.value.code) == (409, "already_reported")
    assert audits(action.id, "reviews.action.executed") == 1


def test_argument_binding_the_edited_payload_runs_and_its_hash_is_claimed(make_client):
    client, deployment = make_client("approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    ran: list[dict] = []
    call = Call(client.run, ran.append, "refund.issue", ORDER, timeout=30, **LOW)
    action = proposed(deployment)
    edited = {"order": "A-1", "amount_cents": 900}
    proposed_action_approve(action_id=action.pk, actor=reviewer.user, payload=edited)
    call.join()
    assert call.error is None and ran == [edited]
    claimed = AuditEvent.objects.get(object_id=str(action.pk), verb="reviews.action.execution_claimed")
    assert claimed.data["payload_sha256"] == ProposedAction.objects.get(pk=action.pk).payload_sha256


def test_unknown_outcome_is_reported_then_reconciled_not_committed_runs_once_more(make_client, admin):
    client, deployment = make_client("supervised")
    attempts: list[int] = []

    def flaky(payload):
        attempts.append(1)
        if len(attempts) == 1:
            raise OutcomeUnknown("the payment provider timed out")
        return "paid"

    key = f"unknown-{uuid.uuid4()}"
    with pytest.raises(OutcomeUnknown):
        client.run(flaky, "refund.issue", ORDER, idempotency_key=key, **LOW)
    action = ProposedAction.objects.get(deployment=deployment)
    assert (action.status, action.decision) == ("unknown", "reconcile")
    with pytest.raises(ActionAlreadyClaimed):  # never offered again while unknown
        client.run(flaky, "refund.issue", ORDER, idempotency_key=key, **LOW)
    assert len(attempts) == 1
    # The admin checks the provider in the browser: not committed re-opens it once.
    proposed_action_reconcile(action_id=action.pk, committed=False, actor=admin.user, reason="no charge in the ledger")
    assert client.run(flaky, "refund.issue", ORDER, idempotency_key=key, **LOW) == "paid"
    with pytest.raises(ActionAlreadyClaimed):
        client.run(flaky, "refund.issue", ORDER, idempotency_key=key, **LOW)
    assert len(attempts) == 2
    action.refresh_from_db()
    assert (action.status, action.execution_claims) == ("executed", 2)


def test_the_agent_reconciles_committed(make_client):
    client, _ = make_client("supervised")
    action = client.propose("refund.issue", ORDER, **LOW)
    claim = client.claim(action.id)
    client.report_result(action.id, status="unknown", payload_sha256=action.payload_sha256, claim_key=claim.claim_key)
    assert client.reconcile(action.id, committed=True, reason="found it").decision == "done"


def test_cancellation_by_the_agent_then_a_late_approval_is_refused(make_client):
    client, deployment = make_client("approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    action = client.propose("refund.issue", ORDER, **LOW)
    assert client.cancel(action.id, reason="no longer needed").decision == "cancelled"
    from deployments.errors import InvalidTransition

    with pytest.raises(InvalidTransition):
        proposed_action_approve(action_id=action.id, actor=reviewer.user)
    with pytest.raises(ActionCancelled):
        client.claim(action.id)


def test_a_timed_out_call_is_cancelled(make_client):
    client, deployment = make_client("approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    ran = []
    with pytest.raises(DecisionTimeout):
        client.run(ran.append, "refund.issue", ORDER, timeout=0.5, expires_in=60, **LOW)
    action = ProposedAction.objects.get(deployment=deployment)
    assert action.status == "cancelled"
    from deployments.errors import InvalidTransition

    with pytest.raises(InvalidTransition):  # a late approval cannot make it executable
        proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    assert ran == []


def test_the_wait_timeout_is_the_deadline(make_client):
    client, deployment = make_client("approval")
    ran = []
    with pytest.raises((ActionExpired, DecisionTimeout)):  # whichever the client sees first
        client.run(ran.append, "refund.issue", ORDER, timeout=1, **LOW)
    action = ProposedAction.objects.get(deployment=deployment)
    assert action.deadline is not None and (action.deadline - action.created_at).total_seconds() <= 2
    assert action.status in ("expired", "cancelled") and ran == []


def test_a_deadline_past_without_a_claim_expires_an_approved_action(make_client):
    client, deployment = make_client("approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    action = client.propose("refund.issue", ORDER, expires_in=1, **LOW)
    proposed_action_approve(action_id=action.id, actor=reviewer.user)
    import time

    time.sleep(1.2)
    assert client.get(action.id).decision == "expired"  # read after the deadline: fail closed
    with pytest.raises(ActionExpired):
        client.claim(action.id)


def test_parallel_siblings_under_a_run_hold_wait_for_the_gated_one(make_client):
    client, deployment = make_client("supervised")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    ran: list[str] = []
    gated = client.propose("refund.issue", ORDER, run_id="run-1", run_hold=True, risk_score=0.5, confidence=0.99)
    sibling = Call(client.run, lambda p: ran.append("sibling"), "email.send", {"to": "x"}, run_id="run-1", **LOW)
    import time

    time.sleep(1.0)
    assert ran == [] and client.get(gated.id).decision == "wait"
    proposed_action_approve(action_id=gated.id, actor=reviewer.user)
    sibling.join()
    assert sibling.error is None and ran == ["sibling"]
    assert client.get(gated.id).decision == "execute"


def test_delegation_a_child_falls_with_its_rejected_parent(make_client):
    client, deployment = make_client("supervised")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    parent = client.propose("refund.issue", ORDER, risk_score=0.5, confidence=0.99)
    ran = []
    child = Call(client.run, ran.append, "email.send", {"to": "x"}, parent_id=parent.id, timeout=30, **LOW)
    proposed_action_reject(action_id=parent.id, actor=reviewer.user, reason="wrong order")
    child.join()
    assert isinstance(child.error, ActionRejected) and "parent" in str(child.error) and ran == []


def test_a_batch_of_one_run(make_client):
    client, deployment = make_client("supervised")
    items = [{"action_type": "refund.issue", "payload": {"n": i}, **LOW} for i in range(10)]
    actions = client.propose_batch(items, run_id="batch-run")
    assert [a.decision for a in actions] == ["execute"] * 10
    assert ProposedAction.objects.filter(deployment=deployment, run__key="batch-run").count() == 10
    with pytest.raises(ApiError) as too_many:
        client.propose_batch(items * 11, run_id="batch-run")
    assert too_many.value.status_code == 422


def test_receipts_every_step_is_in_the_audit_log(make_client):
    client, _ = make_client("supervised")
    refund = client.gate("refund.issue", **LOW)(lambda p: "ok")
    refund(ORDER)
    action = ProposedAction.objects.get()
    verbs = list(
        AuditEvent.objects.filter(object_id=str(action.pk)).order_by("created_at", "id").values_list("verb", flat=True)
    )
    assert verbs == ["reviews.action.auto_approved", "reviews.action.execution_claimed", "reviews.action.executed"]
