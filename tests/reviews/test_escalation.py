"""The escalation chain (reviews/escalation.py): reviewer-queue items past their deployment's
escalate_at_sla_share of review_sla move to the senior queue, seniors are emailed, audited."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from deployments.counters import Metric
from deployments.delegations import delegation_cancel, delegation_create
from deployments.errors import InvalidTransition, NotAllowed
from deployments.models import AuditEvent, EvidenceCount, Member
from reviews.escalation import escalation_due_at, escalation_notify
from reviews.models import Decision, ProposedAction
from reviews.selectors import action_history
from reviews.services import proposed_action_approve, proposed_action_decide
from reviews.tasks import escalate_due_actions
from tests.deliveries.support import eager_celery  # noqa: F401 -- a fixture
from tests.factories import MemberFactory, ProposedActionFactory, UserFactory
from tests.reviews.test_concurrency import run_together

pytestmark = pytest.mark.django_db
S = ProposedAction.Status
Sample = ProposedAction.Sample


@pytest.fixture
def escalating(deployment):
    deployment.review_sla = timedelta(hours=24)
    deployment.senior_sla = timedelta(hours=8)
    deployment.escalate_at_sla_share = 0.5  # due with 12 h of the 24 left
    deployment.save()
    return deployment


def left(hours: float):
    return timezone.now() + timedelta(hours=hours)


def test_off_by_default_nothing_moves(deployment):
    assert deployment.escalate_at_sla_share is None
    action = ProposedActionFactory(deployment=deployment, expires_at=left(0.1))
    assert escalation_due_at(action) is None
    assert escalate_due_actions() == 0
    assert ProposedAction.objects.get(pk=action.pk).status == S.PENDING_REVIEW


@pytest.mark.usefixtures("eager_celery")
def test_due_items_move_once_the_others_stay(escalating, senior, reviewer, django_capture_on_commit_callbacks):
    senior.user.email = "senior@example.com"
    senior.user.save()
    reviewer.user.email = "reviewer@example.com"
    reviewer.user.save()
    due = ProposedActionFactory(deployment=escalating, expires_at=left(11))
    not_yet = ProposedActionFactory(deployment=escalating, expires_at=left(13))
    drill = ProposedActionFactory(deployment=escalating, expires_at=left(1), review_sample=Sample.DRILL)
    double = ProposedActionFactory(deployment=escalating, expires_at=left(1), review_sample=Sample.DOUBLE)
    in_senior = ProposedActionFactory(deployment=escalating, status=S.PENDING_SENIOR, expires_at=left(1))
    overdue = ProposedActionFactory(deployment=escalating, expires_at=left(-1))  # left to expiry
    other = ProposedActionFactory(expires_at=left(1))  # a deployment without escalation

    with django_capture_on_commit_callbacks(execute=True):  # the notification is sent after the commit
        assert escalate_due_actions() == 1
        assert escalate_due_actions() == 0  # safe to repeat

    due.refresh_from_db()
    assert due.status == S.PENDING_SENIOR and due.decided_at is None and due.claimed_by is None
    assert abs((due.expires_at - left(8)).total_seconds()) < 60  # a fresh senior SLA
    assert "50% of the review SLA" in due.reason
    for untouched in (not_yet, drill, double, overdue, other):
        assert ProposedAction.objects.get(pk=untouched.pk).status == S.PENDING_REVIEW
    assert ProposedAction.objects.get(pk=in_senior.pk).status == S.PENDING_SENIOR

    decision = Decision.objects.get(action=due)
    assert (decision.verb, decision.actor, decision.from_status, decision.to_status) == (
        "escalate",
        None,
        S.PENDING_REVIEW,
        S.PENDING_SENIOR,
    )
    event = AuditEvent.objects.get(verb="reviews.action.auto_escalated")
    assert (event.object_id, event.actor_id, event.actor_label) == (str(due.pk), None, "system")
    assert event.data == {"from": S.PENDING_REVIEW, "to": S.PENDING_SENIOR}
    assert not AuditEvent.objects.filter(verb="reviews.action.escalated").exists()
    assert "Action auto escalated" in [h.what for h in action_history(due)]  # the verb for people (issue 19)
    # Counted apart from people's escalations (the reviewer-quality page counts those).
    assert EvidenceCount.objects.filter(deployment=escalating, metric=Metric.ESCALATION_AUTO).exists()
    assert not EvidenceCount.objects.filter(deployment=escalating, metric=Metric.DECISION_ESCALATE).exists()

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["senior@example.com"]
    assert f"#{due.pk}" in mail.outbox[0].subject


def test_after_the_move_only_a_senior_decides(escalating, reviewer, senior):
    action = ProposedActionFactory(deployment=escalating, expires_at=left(2))
    escalate_due_actions()
    with pytest.raises(NotAllowed):
        proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    proposed_action_decide(action_id=action.pk, actor=senior.user, decision="approve", reason="")
    assert ProposedAction.objects.get(pk=action.pk).status == S.APPROVED


def test_a_decided_item_is_not_escalated_and_stale_news_is_not_sent(escalating, senior):
    senior.user.email = "s@example.com"
    senior.user.save()
    action = ProposedActionFactory(deployment=escalating, expires_at=left(2))
    proposed_action_approve(action_id=action.pk, actor=senior.user)
    assert escalate_due_actions() == 0
    assert escalation_notify(action_id=action.pk) is False
    assert mail.outbox == []


@pytest.mark.usefixtures("eager_celery")
def test_admins_are_told_seniors_of_other_deployments_are_not(escalating, django_capture_on_commit_callbacks):
    admin = MemberFactory(role=Member.Role.ADMIN, user=UserFactory(email="admin@example.com"))
    MemberFactory(role=Member.Role.SENIOR, user=UserFactory(email="elsewhere@example.com"))
    ProposedActionFactory(deployment=escalating, expires_at=left(2))
    with django_capture_on_commit_callbacks(execute=True):
        escalate_due_actions()
    assert [m.to for m in mail.outbox] == [[admin.user.email]]


@pytest.mark.usefixtures("eager_celery")
def test_whoever_covers_for_one_of_its_seniors_is_told_too(
    escalating, senior, reviewer, django_capture_on_commit_callbacks
):
    senior.user.email = "away@example.com"
    senior.user.save()
    cover = MemberFactory(role=Member.Role.REVIEWER, user=UserFactory(email="cover@example.com"))
    not_yet = MemberFactory(role=Member.Role.REVIEWER, user=UserFactory(email="later@example.com"))
    for_a_reviewer = MemberFactory(role=Member.Role.REVIEWER, user=UserFactory(email="reviewers-cover@example.com"))
    cancelled = MemberFactory(role=Member.Role.REVIEWER, user=UserFactory(email="cancelled@example.com"))
    now = timezone.now()
    week = {"starts_at": now - timedelta(hours=1), "ends_at": now + timedelta(days=7)}
    delegation_create(actor=senior.user, delegator_id=senior.pk, delegate_id=cover.pk, **week)
    delegation_create(
        actor=senior.user,
        delegator_id=senior.pk,
        delegate_id=not_yet.pk,
        starts_at=now + timedelta(days=8),
        ends_at=now + timedelta(days=9),
    )
    # A reviewer's delegation hands over the reviewer queue only: not told of the senior queue.
    delegation_create(actor=reviewer.user, delegator_id=reviewer.pk, delegate_id=for_a_reviewer.pk, **week)
    gone = delegation_create(
        actor=senior.user,
        delegator_id=senior.pk,
        delegate_id=cancelled.pk,
        starts_at=now + timedelta(days=10),
        ends_at=now + timedelta(days=11),
    )
    delegation_cancel(actor=senior.user, delegation_id=gone.pk)
    ProposedActionFactory(deployment=escalating, expires_at=left(2))
    with django_capture_on_commit_callbacks(execute=True):
        assert escalate_due_actions() == 1
    assert [sorted(m.to) for m in mail.outbox] == [["away@example.com", "cover@example.com"]]


def test_the_share_bounds_are_validated(escalating):
    escalating.escalate_at_sla_share = 1.5
    with pytest.raises(ValidationError):
        escalating.full_clean()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_a_reviewer_exactly_one_wins(escalating, reviewer):
    assert connection.vendor == "postgresql"
    for _ in range(30):
        action = ProposedActionFactory(deployment=escalating, expires_at=left(2))
        results = run_together(
            escalate_due_actions,
            lambda action=action: proposed_action_approve(action_id=action.pk, actor=reviewer.user),
        )
        stored = ProposedAction.objects.get(pk=action.pk)
        decisions = list(Decision.objects.filter(action=action).values_list("verb", flat=True))
        if stored.status == S.APPROVED:  # the reviewer first: the task found nothing due
            assert results[0] == 0 and isinstance(results[1], ProposedAction) and decisions == ["approve"]
        else:  # the task first: the reviewer may no longer decide the senior queue
            assert stored.status == S.PENDING_SENIOR and results[0] == 1, results
            assert isinstance(results[1], NotAllowed | InvalidTransition) and decisions == ["escalate"]
    assert (
        AuditEvent.objects.filter(verb="reviews.action.auto_escalated").count()
        == Decision.objects.filter(verb="escalate").count()
    )


def test_the_agents_deadline_caps_the_senior_sla(escalating):
    deadline = left(3)
    action = ProposedActionFactory(deployment=escalating, expires_at=left(2), deadline=deadline)
    assert escalate_due_actions() == 1
    action.refresh_from_db()
    assert action.status == S.PENDING_SENIOR and action.expires_at == deadline  # not now + 8 h
