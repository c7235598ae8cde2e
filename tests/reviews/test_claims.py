"""Claims on queue items: the oldest unclaimed item is offered, to one person at a time, until
the claim times out. The drain test runs 8 reviewers at once on real PostgreSQL."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, Member
from reviews.claims import proposed_action_claim, proposed_action_claim_next, proposed_action_release
from reviews.models import Decision, ProposedAction
from reviews.services import proposed_action_approve, proposed_action_audit_verdict, proposed_action_decide
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory
from tests.reviews.test_concurrency import run_together
from tests.support.counters import evidence_totals

Status = ProposedAction.Status


def test_claim_next_takes_the_oldest_and_nobody_else_is_offered_it(reviewer, senior, deployment):
    first, second = ProposedActionFactory(deployment=deployment), ProposedActionFactory(deployment=deployment)
    mine = proposed_action_claim_next(actor=reviewer.user)
    assert mine.pk == first.pk and mine.claimed_by_id == reviewer.user_id
    theirs = proposed_action_claim_next(actor=senior.user)
    assert theirs.pk == second.pk
    third_person = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    assert proposed_action_claim_next(actor=third_person.user) is None


def test_claim_next_returns_your_own_claim_again(reviewer, deployment):
    first = ProposedActionFactory(deployment=deployment)
    ProposedActionFactory(deployment=deployment)
    assert proposed_action_claim_next(actor=reviewer.user).pk == first.pk
    assert proposed_action_claim_next(actor=reviewer.user).pk == first.pk  # safe to repeat
    assert ProposedAction.objects.filter(claimed_by=reviewer.user).count() == 1


def test_skipping_moves_on_and_keeps_one_claim_per_person(reviewer, deployment):
    first, second = ProposedActionFactory(deployment=deployment), ProposedActionFactory(deployment=deployment)
    proposed_action_claim_next(actor=reviewer.user)
    nxt = proposed_action_claim_next(actor=reviewer.user, skip_ids=[first.pk])
    assert nxt.pk == second.pk
    assert list(ProposedAction.objects.filter(claimed_by=reviewer.user).values_list("pk", flat=True)) == [second.pk]


def test_a_claim_times_out(reviewer, senior, deployment):
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_claim_next(actor=reviewer.user)
    ProposedAction.objects.filter(pk=action.pk).update(
        claimed_at=timezone.now() - settings.REVIEW_CLAIM_TIMEOUT - timedelta(seconds=1)
    )
    assert proposed_action_claim_next(actor=senior.user).pk == action.pk
    assert ProposedAction.objects.get(pk=action.pk).claimed_by_id == senior.user_id


def test_claim_next_respects_assignment_filters_and_queues(reviewer, senior, deployment):
    ProposedActionFactory()  # another deployment
    ProposedActionFactory(deployment=deployment, status=Status.PENDING_SENIOR)
    assert proposed_action_claim_next(actor=reviewer.user) is None
    refund = ProposedActionFactory(deployment=deployment, action_type="refund.issue")
    invoice = ProposedActionFactory(deployment=deployment, action_type="invoice.match")
    assert proposed_action_claim_next(actor=reviewer.user, action_type="invoice.match").pk == invoice.pk
    proposed_action_release(action_id=invoice.pk, actor=reviewer.user)
    assert proposed_action_claim_next(actor=reviewer.user, deployment_id=deployment.pk).pk == refund.pk
    with pytest.raises(NotAllowed):
        proposed_action_claim_next(actor=reviewer.user, queue="senior")
    with pytest.raises(InvalidInput):
        proposed_action_claim_next(actor=senior.user, queue="nope")
    assert proposed_action_claim_next(actor=senior.user, queue="senior").status == Status.PENDING_SENIOR


def test_claim_and_release(reviewer, senior, deployment):
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_claim(action_id=action.pk, actor=reviewer.user)
    proposed_action_claim(action_id=action.pk, actor=reviewer.user)  # safe to repeat
    with pytest.raises(Conflict):
        proposed_action_claim(action_id=action.pk, actor=senior.user)
    proposed_action_release(action_id=action.pk, actor=senior.user)  # not theirs: left alone
    assert ProposedAction.objects.get(pk=action.pk).claimed_by_id == reviewer.user_id
    proposed_action_release(action_id=action.pk, actor=reviewer.user)
    proposed_action_release(action_id=action.pk, actor=reviewer.user)
    assert ProposedAction.objects.get(pk=action.pk).claimed_by_id is None
    proposed_action_claim(action_id=action.pk, actor=senior.user)


def test_claiming_a_decided_or_foreign_item_is_refused(reviewer, deployment):
    done = ProposedActionFactory(deployment=deployment, status=Status.REJECTED)
    with pytest.raises(InvalidTransition):
        proposed_action_claim(action_id=done.pk, actor=reviewer.user)
    foreign = ProposedActionFactory()
    with pytest.raises(NotAllowed):
        proposed_action_claim(action_id=foreign.pk, actor=reviewer.user)


def test_decide_refuses_while_someone_else_holds_the_claim(reviewer, senior, deployment):
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_claim(action_id=action.pk, actor=senior.user)
    with pytest.raises(Conflict):
        proposed_action_decide(action_id=action.pk, actor=reviewer.user, decision="approve")
    assert not Decision.objects.exists()
    decided = proposed_action_decide(action_id=action.pk, actor=senior.user, decision="approve")
    assert decided.status == Status.APPROVED and decided.claimed_by_id is None
    decision = Decision.objects.get(action=action)
    assert decision.claimed_at is not None and decision.seconds_to_decide < 60


def test_decide_rejects_unknown_decisions(reviewer, deployment):
    action = ProposedActionFactory(deployment=deployment)
    with pytest.raises(InvalidInput):
        proposed_action_decide(action_id=action.pk, actor=reviewer.user, decision="maybe")


# ---------------------------------------------------------------------------------------
# Audit verdicts
# ---------------------------------------------------------------------------------------


def _sample(deployment, **kw) -> ProposedAction:
    return ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True, **kw)


@pytest.mark.parametrize("verdict", ["correct", "incorrect"])
def test_audit_verdict_writes_decision_evidence_and_audit_event(senior, deployment, verdict):
    sample = _sample(deployment)
    proposed_action_claim_next(actor=senior.user, queue="audit")
    result = proposed_action_audit_verdict(action_id=sample.pk, actor=senior.user, verdict=verdict, reason="checked")
    assert result.audit_verdict == verdict and result.status == Status.EXECUTED and result.claimed_by_id is None
    decision = Decision.objects.get(action=sample)
    assert decision.verb == f"audit_{verdict}" and decision.actor_id == senior.user_id
    assert decision.claimed_at is not None
    totals = evidence_totals(deployment_id=deployment.pk)
    assert totals[("refund.issue", f"audit.{verdict}")] == 1
    other = "incorrect" if verdict == "correct" else "correct"
    assert ("refund.issue", f"audit.{other}") not in totals
    event = AuditEvent.objects.get(verb="reviews.action.audit_verdict")
    assert event.data["verdict"] == verdict and event.object_id == str(sample.pk)
    assert not ProposedAction.objects.in_audit_queue().exists()


def test_a_second_verdict_changes_nothing(senior, deployment):
    sample = _sample(deployment)
    proposed_action_audit_verdict(action_id=sample.pk, actor=senior.user, verdict="correct")
    with pytest.raises(InvalidTransition):
        proposed_action_audit_verdict(action_id=sample.pk, actor=senior.user, verdict="incorrect", reason="x")
    assert ProposedAction.objects.get(pk=sample.pk).audit_verdict == "correct"
    assert Decision.objects.filter(action=sample).count() == 1
    assert evidence_totals(deployment_id=deployment.pk) == {("refund.issue", "audit.correct"): 1}


def test_audit_verdict_preconditions(reviewer, senior, admin, deployment):
    sample = _sample(deployment)
    with pytest.raises(NotAllowed):
        proposed_action_audit_verdict(action_id=sample.pk, actor=reviewer.user, verdict="correct")
    outsider = MemberFactory(role=Member.Role.SENIOR, deployments=[DeploymentFactory()])
    with pytest.raises(NotAllowed):
        proposed_action_audit_verdict(action_id=sample.pk, actor=outsider.user, verdict="correct")
    with pytest.raises(InvalidInput):
        proposed_action_audit_verdict(action_id=sample.pk, actor=senior.user, verdict="fine")
    with pytest.raises(InvalidInput):
        proposed_action_audit_verdict(action_id=sample.pk, actor=senior.user, verdict="incorrect", reason=" ")
    not_sampled = ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto")
    with pytest.raises(InvalidTransition):
        proposed_action_audit_verdict(action_id=not_sampled.pk, actor=senior.user, verdict="correct")
    assert not Decision.objects.exists()
    proposed_action_audit_verdict(action_id=sample.pk, actor=admin.user, verdict="correct")  # admins see all


# ---------------------------------------------------------------------------------------
# Concurrency on real PostgreSQL
# ---------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_reviewers_drain_two_hundred_items_each_decided_once():
    assert connection.vendor == "postgresql"
    deployment = DeploymentFactory()
    reviewers = [MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment]) for _ in range(8)]
    ProposedActionFactory.create_batch(200, deployment=deployment)
    decided: dict[int, list[int]] = {m.user_id: [] for m in reviewers}
    errors: list[Exception] = []
    lock = threading.Lock()

    def work(member):
        def drain():
            while True:
                action = proposed_action_claim_next(actor=member.user)
                if action is None:
                    return
                try:
                    proposed_action_approve(action_id=action.pk, actor=member.user)
                except Exception as exc:  # any failure is a test failure below
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    decided[member.user_id].append(action.pk)

        return drain

    run_together(*[work(m) for m in reviewers])
    assert errors == []
    everything = [pk for pks in decided.values() for pk in pks]
    assert len(everything) == 200 and len(set(everything)) == 200
    assert not ProposedAction.objects.pending().exists()
    assert Decision.objects.count() == 200
    assert ProposedAction.objects.filter(status=Status.APPROVED).count() == 200
    # Every decision was made by the reviewer who held the claim.
    for decision in Decision.objects.all():
        assert decision.claimed_at is not None
        assert decision.action_id in decided[decision.actor_id]
    assert sum(1 for pks in decided.values() if pks) > 1  # the work was actually shared


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim_next_skips_a_row_locked_by_another_transaction():
    """SKIP LOCKED: a row held by a concurrent transaction is passed over, not waited for."""
    from django.db import connections, transaction

    deployment = DeploymentFactory()
    member = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    first, second = ProposedActionFactory.create_batch(2, deployment=deployment)
    locked = threading.Event()
    release = threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                ProposedAction.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10)
    try:
        got = run_together(lambda: proposed_action_claim_next(actor=member.user))[0]
    finally:
        release.set()
        holder.join(10)
    assert isinstance(got, ProposedAction) and got.pk == second.pk
