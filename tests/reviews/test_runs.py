"""Issue 15 through reviews.runs: the run-wide hold, parents and children, and a list of
proposals of one run in one request (all or none)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.errors import Conflict, InvalidInput, InvalidTransition
from deployments.models import AuditEvent, EvidenceCount
from reviews.batch import proposed_actions_create_batch
from reviews.execution import proposed_action_cancel, proposed_action_deadline_expire, proposed_action_execution_claim
from reviews.models import ActionRun, ProposedAction
from reviews.services import (
    Proposal,
    proposed_action_approve,
    proposed_action_escalate,
    proposed_action_expire,
    proposed_action_reject,
)
from tests.conftest import proposal
from tests.factories import action_propose

S = ProposedAction.Status
pytestmark = pytest.mark.django_db
AUTO = {"risk_score": 0.1, "confidence": 0.99}
GATED = {"risk_score": 0.5, "confidence": 0.99}


def propose(deployment, **kw) -> ProposedAction:
    fields = {"action_type": "refund.issue", "payload": {"amount_cents": 1200}, **AUTO}
    return action_propose(deployment, **{**fields, **kw})


def status(action) -> str:
    return ProposedAction.objects.get(pk=action.pk).status


def test_a_run_hold_keeps_siblings_back_until_every_gated_action_is_decided(deployment, reviewer):
    gated_a = propose(deployment, run_id="r1", run_hold=True, **GATED)
    gated_b = propose(deployment, run_id="r1", **GATED)
    ungated = propose(deployment, run_id="r1")
    assert (ungated.status, ungated.decision) == (S.HELD, "wait")
    with pytest.raises(InvalidTransition):
        proposed_action_execution_claim(action_id=ungated.pk)
    first = proposed_action_approve(action_id=gated_a.pk, actor=reviewer.user)
    assert (first.status, first.decision) == (S.HELD, "wait")  # gated_b still waits for a person
    proposed_action_reject(action_id=gated_b.pk, actor=reviewer.user, reason="no")
    assert (status(gated_a), status(ungated)) == (S.APPROVED, S.APPROVED)  # released, once each
    assert AuditEvent.objects.filter(verb="reviews.action.released").count() == 2
    proposed_action_execution_claim(action_id=ungated.pk)
    # A later proposal into the decided run is not held.
    assert propose(deployment, run_id="r1").status == S.APPROVED


def test_without_a_hold_siblings_go_their_own_way(deployment):
    propose(deployment, run_id="free", **GATED)
    assert propose(deployment, run_id="free").status == S.APPROVED
    assert ActionRun.objects.get(key="free").hold is False


def test_turning_the_hold_on_later_holds_approved_siblings_not_yet_claimed(deployment):
    early = propose(deployment, run_id="r2")
    claimed = propose(deployment, run_id="r2")
    proposed_action_execution_claim(action_id=claimed.pk)
    propose(deployment, run_id="r2", run_hold=True, **GATED)
    assert (status(early), status(claimed)) == (S.HELD, S.EXECUTING)
    assert AuditEvent.objects.filter(verb="reviews.run.hold_set").count() == 1


def test_a_cancelled_or_expired_gated_action_releases_the_run(deployment):
    gated = propose(deployment, run_id="r3", run_hold=True, **GATED)
    held = propose(deployment, run_id="r3")
    proposed_action_cancel(action_id=gated.pk)
    assert status(held) == S.APPROVED
    gated = propose(deployment, run_id="r4", run_hold=True, **GATED)
    held = propose(deployment, run_id="r4")
    proposed_action_expire(action_id=gated.pk, now=timezone.now() + timedelta(days=2))
    assert status(held) == S.APPROVED


def test_escalation_keeps_the_run_held(deployment, reviewer, senior):
    gated = propose(deployment, run_id="r5", run_hold=True, **GATED)
    held = propose(deployment, run_id="r5")
    proposed_action_escalate(action_id=gated.pk, actor=reviewer.user, reason="big")
    assert status(held) == S.HELD
    proposed_action_approve(action_id=gated.pk, actor=senior.user)
    assert (status(held), status(gated)) == (S.APPROVED, S.APPROVED)


def test_a_child_waits_for_its_parent_and_goes_when_it_is_approved(deployment, reviewer):
    parent = propose(deployment, **GATED)
    child = propose(deployment, parent_id=parent.pk)
    assert (child.status, child.decision, child.parent_id) == (S.HELD, "wait", parent.pk)
    proposed_action_approve(action_id=parent.pk, actor=reviewer.user)
    assert status(child) == S.APPROVED


def test_a_gated_child_approved_before_its_parent_is_held_until_the_parent_is(deployment, reviewer):
    parent = propose(deployment, **GATED)
    child = propose(deployment, parent_id=parent.pk, **GATED)
    assert proposed_action_approve(action_id=child.pk, actor=reviewer.user).status == S.HELD
    proposed_action_approve(action_id=parent.pk, actor=reviewer.user)
    assert status(child) == S.APPROVED


@pytest.mark.parametrize("fall", ["reject", "cancel", "expire"])
def test_children_and_grandchildren_fall_with_their_parent(deployment, reviewer, fall):
    parent = propose(deployment, **GATED)
    child = propose(deployment, parent_id=parent.pk, **GATED)
    grandchild = propose(deployment, parent_id=child.pk)
    if fall == "reject":
        proposed_action_reject(action_id=parent.pk, actor=reviewer.user, reason="no")
    elif fall == "cancel":
        proposed_action_cancel(action_id=parent.pk)
    else:
        proposed_action_expire(action_id=parent.pk, now=timezone.now() + timedelta(days=2))
    for fallen in (child, grandchild):
        stored = ProposedAction.objects.get(pk=fallen.pk)
        assert (stored.status, stored.decision) == (S.REJECTED, "reject")
        assert "parent" in stored.reason
    assert AuditEvent.objects.filter(verb="reviews.action.refused_by_parent").count() == 2
    # A child proposed after its parent fell is refused at once, audited.
    late = propose(deployment, parent_id=parent.pk)
    assert late.status == S.REJECTED
    assert AuditEvent.objects.filter(verb="reviews.action.refused_by_parent", object_id=str(late.pk)).exists()


def test_a_child_under_a_deadline_expired_parent_falls(deployment):
    parent = propose(deployment, deadline=timezone.now() + timedelta(minutes=1))
    child = propose(deployment, parent_id=parent.pk)
    assert child.status == S.APPROVED  # the parent is approved (by policy)
    held_parent = propose(deployment, **GATED)
    child2 = propose(deployment, parent_id=held_parent.pk)
    proposed_action_deadline_expire(action_id=parent.pk, now=timezone.now() + timedelta(minutes=2))
    assert status(child) == S.REJECTED and status(child2) == S.HELD


def test_a_parent_of_another_deployment_is_422(deployment):
    from tests.factories import DeploymentFactory

    other = propose(DeploymentFactory(stage="supervised"))
    with pytest.raises(InvalidInput, match="parent_id"):
        propose(deployment, parent_id=other.pk)


def test_the_queue_and_the_action_page_show_the_run_and_the_parent(client, deployment, reviewer):
    parent = propose(deployment, **GATED)
    child = propose(deployment, parent_id=parent.pk, run_id="nightly-42", **GATED)
    client.force_login(reviewer.user)
    queue = client.get("/queue/").content.decode()
    assert "nightly-42" in queue and f"#{parent.pk}" in queue
    page = client.get(f"/actions/{child.pk}/").content.decode()
    assert "nightly-42" in page and f"/actions/{parent.pk}/" in page


# -- lists of proposals -----------------------------------------------------------------------


def batch_item(deadline=None, parent_id=None, **kw) -> dict:
    """One item of a list as reviews.batch takes it: the Proposal and its links."""
    fields = {"action_type": "refund.issue", "payload": {"amount_cents": 100}, **AUTO, **kw}
    return {"proposal": Proposal(**fields), "deadline": deadline, "parent_id": parent_id}


def test_a_list_is_routed_item_by_item_and_stored_with_its_evidence(deployment):
    actions, _ = proposed_actions_create_batch(
        deployment=deployment,
        run_id="b1",
        run_hold=True,
        proposals=[batch_item(external_id=f"e{i}") for i in range(5)] + [batch_item(**GATED)],
    )
    assert [a.status for a in actions] == [S.HELD] * 5 + [S.PENDING_REVIEW]
    assert {a.run.key for a in actions} == {"b1"}
    n = sum(EvidenceCount.objects.filter(metric="proposed.auto").values_list("n", flat=True))
    assert n == 5
    assert AuditEvent.objects.filter(verb="reviews.action.auto_approved").count() == 5


def test_a_list_is_all_or_none(deployment, reviewer):
    deployment.stage = "approval"
    deployment.save()
    rejected = propose(deployment, external_id="x")
    proposed_action_reject(action_id=rejected.pk, actor=reviewer.user, reason="no")
    before = ProposedAction.objects.count()
    with pytest.raises(Conflict, match=r"actions\[1\]"):
        proposed_actions_create_batch(
            deployment=deployment,
            proposals=[batch_item(external_id="y"), batch_item(external_id="x", payload={"amount_cents": 1200})],
        )
    with pytest.raises(InvalidInput, match=r"actions\[0\]"):
        proposed_actions_create_batch(
            deployment=deployment, proposals=[batch_item(deadline=timezone.now() + timedelta(days=30))]
        )
    with pytest.raises(InvalidInput):
        proposed_actions_create_batch(deployment=deployment, proposals=[batch_item()] * 101)
    assert ProposedAction.objects.count() == before


def test_api_batch(api, deployment):
    body = {"run_id": "api-run", "run_hold": True, "actions": [proposal(), proposal(risk_score=0.5)]}
    r = api.post("/api/v1/actions/batch", body, headers={"Idempotency-Key": "batch-1"})
    assert r.status_code == 201, r.content
    decisions = [a["decision"] for a in r.json()["actions"]]
    assert decisions == ["wait", "wait"] and r.json()["run_id"] == "api-run"
    replay = api.post("/api/v1/actions/batch", body, headers={"Idempotency-Key": "batch-1"})
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == r.json()
    assert ProposedAction.objects.filter(run__key="api-run").count() == 2
    other = api.post("/api/v1/actions/batch", {**body, "run_hold": False}, headers={"Idempotency-Key": "batch-1"})
    assert other.status_code == 422
    too_many = api.post("/api/v1/actions/batch", {"actions": [proposal()] * 101})
    assert too_many.status_code == 422
    # An item's own run fields are not part of a list's items: the list's run is every item's.
    mixed = api.post("/api/v1/actions/batch", {"run_id": "a", "actions": [proposal(run_id="b")]})
    assert mixed.status_code == 201 and mixed.json()["actions"][0]["run_id"] == "a"


def test_api_child_of_a_batch_item(api):
    parent = api.post("/api/v1/actions", proposal(risk_score=0.5)).json()
    r = api.post("/api/v1/actions/batch", {"actions": [proposal(parent_id=parent["id"])]})
    assert r.status_code == 201 and r.json()["actions"][0]["parent_id"] == parent["id"]
    assert r.json()["actions"][0]["decision"] == "wait"
    missing = api.post("/api/v1/actions/batch", {"actions": [proposal(parent_id=10**12)]})
    assert missing.status_code == 422 and "parent_id" in missing.json()["detail"]
