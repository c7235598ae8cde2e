"""Out-of-office delegation (issue 17 item 5): deployments.delegations' services, and the reach
it grants through deployments.permissions (never more than the delegator had, never admin
powers, audited "X for Y")."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployments.delegations import delegation_cancel, delegation_create
from deployments.errors import InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, Delegation, Member
from deployments.permissions import acting_for, member_reach
from reviews.claims import proposed_action_claim_next
from reviews.models import Decision, ProposedAction
from reviews.selectors import action_history
from reviews.services import proposed_action_audit_verdict, proposed_action_decide
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
S = ProposedAction.Status


@pytest.fixture
def two():
    return DeploymentFactory(slug="ours", stage="supervised"), DeploymentFactory(slug="theirs", stage="supervised")


def away(delegator: Member, delegate: Member, *, actor=None, start=0, days=3, note="") -> Delegation:
    now = timezone.now()
    return delegation_create(
        actor=(actor or delegator).user,
        delegator_id=delegator.pk,
        delegate_id=delegate.pk,
        starts_at=now + timedelta(days=start),
        ends_at=now + timedelta(days=start + days),
        note=note,
    )


def fresh(member: Member) -> Member:
    """The member as a new request reads it (the reach is read once per Member instance)."""
    return Member.objects.get(pk=member.pk)


def test_a_delegate_works_the_delegators_queue_and_each_decision_says_for_whom(two):
    ours, theirs = two
    alice = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    bob = MemberFactory(role=Member.Role.REVIEWER, deployments=[theirs])
    action = ProposedActionFactory(deployment=ours)
    assert proposed_action_claim_next(actor=bob.user) is None  # not his deployment
    delegation = away(alice, bob, note="holiday")
    created = AuditEvent.objects.get(verb="deployments.delegation.created")
    assert created.actor_id == alice.user_id and created.data["delegate"] == bob.user.username
    assert created.reason == "holiday" and created.object_id == str(delegation.pk)
    assert proposed_action_claim_next(actor=bob.user) == action
    proposed_action_decide(action_id=action.pk, actor=bob.user, decision="reject", reason="wrong order")
    decision = Decision.objects.get(action=action)
    assert (decision.actor_id, decision.on_behalf_of_id) == (bob.user_id, alice.user_id)
    event = AuditEvent.objects.get(verb="reviews.action.rejected")
    assert event.actor_id == bob.user_id and event.data["on_behalf_of"] == alice.user.username
    assert action_history(action)[-1].who == f"{bob.user.username} for {alice.user.username}"


def test_own_rights_come_first_no_for_whom_on_ones_own_deployment(two):
    ours, _ = two
    alice = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    bob = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    away(alice, bob)
    assert acting_for(fresh(bob), ours.pk) is None


def test_never_more_than_the_delegator_had(two):
    ours, theirs = two
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[theirs])
    away(reviewer, senior)
    reach = member_reach(fresh(senior))
    # The senior covers the reviewer's queue of `ours`, not its senior or audit queues.
    assert acting_for(fresh(senior), ours.pk, "review").username == reviewer.user.username
    with pytest.raises(NotAllowed, match="senior"):
        acting_for(fresh(senior), ours.pk, "senior")
    assert ours.pk not in reach.ids("senior") and ours.pk in reach.ids("review")
    pending_senior = ProposedActionFactory(deployment=ours, status=S.PENDING_SENIOR, route="senior")
    with pytest.raises(NotAllowed):
        proposed_action_decide(action_id=pending_senior.pk, actor=senior.user, decision="approve")
    audit = ProposedActionFactory(deployment=ours, status=S.APPROVED, route="auto", audit_sample=True)
    with pytest.raises(NotAllowed):
        proposed_action_audit_verdict(action_id=audit.pk, actor=senior.user, verdict="correct")
    client = Client()
    client.force_login(senior.user)
    assert client.get(reverse("deployments:reviewers", args=[ours.slug])).status_code == 404  # a seniors' page
    item_page = client.get(reverse("reviews:action_detail", args=[pending_senior.pk])).content.decode()
    assert 'id="approve-button"' not in item_page  # visible (the reviewer's deployment), not decidable
    assert client.get(reverse("deployments:reviewers", args=[theirs.slug])).status_code == 200


def test_a_reviewer_covering_a_senior_works_the_senior_queue_of_that_deployment_only(two):
    ours, theirs = two
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[ours])
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[theirs])
    mine = ProposedActionFactory(deployment=ours, status=S.PENDING_SENIOR, route="senior")
    other = ProposedActionFactory(deployment=theirs, status=S.PENDING_SENIOR, route="senior")
    client = Client()
    client.force_login(reviewer.user)
    assert client.get(reverse("reviews:senior_queue")).status_code == 403
    away(senior, reviewer)
    page = client.get(reverse("reviews:senior_queue"))
    assert page.status_code == 200 and f'data-id="{mine.pk}"' in page.content.decode()
    assert f'data-id="{other.pk}"' not in page.content.decode()
    assert "Senior" in client.get(reverse("reviews:queue")).content.decode()  # the nav link
    with pytest.raises(NotAllowed):
        proposed_action_decide(action_id=other.pk, actor=reviewer.user, decision="approve")
    proposed_action_decide(action_id=mine.pk, actor=reviewer.user, decision="approve")
    assert Decision.objects.get(action=mine).on_behalf_of_id == senior.user_id
    log = Client()
    log.force_login(MemberFactory(role=Member.Role.ADMIN).user)
    logged = log.get(reverse("deployments:audit_log")).content.decode()
    assert f"{reviewer.user.username} for {senior.user.username}" in logged


def test_a_delegate_never_gains_admin_powers_nor_all_deployments(two):
    ours, theirs = two
    admin = MemberFactory(role=Member.Role.ADMIN, deployments=[ours])
    reviewer = MemberFactory(role=Member.Role.REVIEWER)
    away(admin, reviewer)
    reach = member_reach(fresh(reviewer))
    assert reach.ids("review") == [ours.pk] and reach.ids("senior") == [ours.pk]  # assigned, not "all"
    client = Client()
    client.force_login(reviewer.user)
    assert client.get(reverse("deployments:settings", args=[ours.slug])).status_code == 403
    assert client.get(reverse("deliveries:list")).status_code == 403


def test_delegation_is_not_transitive(two):
    ours, _ = two
    a = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    b = MemberFactory(role=Member.Role.REVIEWER)
    c = MemberFactory(role=Member.Role.REVIEWER)
    away(a, b)
    away(b, c)  # b hands on only b's own (none)
    assert member_reach(fresh(c)).ids("review") == []


def test_only_in_effect_while_its_period_runs(two):
    ours, _ = two
    a = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    b = MemberFactory(role=Member.Role.REVIEWER)
    later = away(a, b, start=2)
    assert member_reach(fresh(b)).ids("review") == []
    Delegation.objects.filter(pk=later.pk).update(starts_at=timezone.now() - timedelta(days=3))
    assert member_reach(fresh(b)).ids("review") == [ours.pk]
    Delegation.objects.filter(pk=later.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    assert member_reach(fresh(b)).ids("review") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"self": True}, "yourself"),
        ({"days": -1}, "after the start"),
        ({"days": 91}, "at most 90 days"),
        ({"note": "a\x00b"}, "NUL"),
        ({"note": "x" * 501}, "at most 500"),
    ],
)
def test_refusals_store_nothing(two, change, message):
    ours, _ = two
    a = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    b = MemberFactory(role=Member.Role.REVIEWER)
    now = timezone.now()
    with pytest.raises(InvalidInput, match=message):
        delegation_create(
            actor=a.user,
            delegator_id=a.pk,
            delegate_id=a.pk if change.get("self") else b.pk,
            starts_at=now,
            ends_at=now + timedelta(days=change.get("days", 3)),
            note=change.get("note", ""),
        )
    assert not Delegation.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="deployments.delegation").exists()


def test_refused_to_a_non_member_overlapping_or_to_someone_away(two):
    ours, _ = two
    a, b, c = (MemberFactory(role=Member.Role.REVIEWER, deployments=[ours]) for _ in range(3))
    now = timezone.now()
    with pytest.raises(InvalidInput, match="must be a member"):
        delegation_create(
            actor=a.user, delegator_id=a.pk, delegate_id=999_999, starts_at=now, ends_at=now + timedelta(days=1)
        )
    away(a, b, days=5)
    with pytest.raises(InvalidInput, match="overlaps"):
        away(a, c, start=2, days=5)
    with pytest.raises(InvalidInput, match="away themselves"):
        away(c, a, start=1, days=1)
    away(a, c, start=6, days=2)  # after the first: fine
    assert Delegation.objects.count() == 2


def test_a_member_manages_their_own_an_admin_anyones(two):
    ours, _ = two
    a, b, c = (MemberFactory(role=Member.Role.REVIEWER, deployments=[ours]) for _ in range(3))
    admin = MemberFactory(role=Member.Role.ADMIN)
    with pytest.raises(NotAllowed, match="your own"):
        away(a, b, actor=c)
    made = away(a, b, actor=admin)
    assert made.created_by_id == admin.user_id
    with pytest.raises(NotAllowed):
        delegation_cancel(actor=c.user, delegation_id=made.pk)
    delegation_cancel(actor=a.user, delegation_id=made.pk)
    event = AuditEvent.objects.get(verb="deployments.delegation.cancelled")
    assert event.actor_id == a.user_id and event.data["was_in_effect"] is True
    assert member_reach(fresh(b)).delegated == {}
    with pytest.raises(InvalidTransition, match="already cancelled"):
        delegation_cancel(actor=a.user, delegation_id=made.pk)
    # A cancelled delegation no longer blocks a new one over the same period.
    away(a, c)


def test_the_away_page_creates_and_cancels_and_refuses_hostile_values(two):
    ours, _ = two
    a = MemberFactory(role=Member.Role.REVIEWER, deployments=[ours])
    b = MemberFactory(role=Member.Role.REVIEWER)
    client = Client()
    client.force_login(a.user)
    page = client.get(reverse("deployments:away"))
    assert page.status_code == 200 and 'name="delegator"' not in page.content.decode()  # admins only
    start = timezone.now().strftime("%Y-%m-%dT%H:%M")
    end = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    good = {"delegate": str(b.pk), "starts_at": start, "ends_at": end, "note": "conference"}
    hostile = [("starts_at", "1e400"), ("ends_at", "2026-13-40T99:99"), ("delegate", "-1"), ("delegator", "x")]
    for field, value in hostile:
        refused = client.post(reverse("deployments:away"), {**good, field: value})
        assert refused.status_code == 422 and "Nothing was saved" in refused.content.decode(), field
    assert not Delegation.objects.exists()
    other = MemberFactory(role=Member.Role.REVIEWER)
    refused = client.post(reverse("deployments:away"), {**good, "delegator": str(other.pk)})
    assert refused.status_code == 403 and not Delegation.objects.exists()
    response = client.post(reverse("deployments:away"), good)
    assert response.status_code == 302
    made = Delegation.objects.get()
    assert (made.delegator_id, made.delegate_id, made.note) == (a.pk, b.pk, "conference")
    assert "conference" in client.get(reverse("deployments:away")).content.decode()
    outsider = Client()
    outsider.force_login(other.user)
    assert outsider.post(reverse("deployments:away_cancel", args=[made.pk])).status_code == 404
    assert client.post(reverse("deployments:away_cancel", args=[made.pk])).status_code == 302
    assert Delegation.objects.get().cancelled_at is not None


def test_an_admin_sets_one_for_anyone_on_the_page(two):
    ours, _ = two
    a, b = (MemberFactory(role=Member.Role.REVIEWER, deployments=[ours]) for _ in range(2))
    admin = MemberFactory(role=Member.Role.ADMIN)
    client = Client()
    client.force_login(admin.user)
    start = timezone.now().strftime("%Y-%m-%dT%H:%M")
    end = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        reverse("deployments:away"), {"delegator": str(a.pk), "delegate": str(b.pk), "starts_at": start, "ends_at": end}
    )
    assert response.status_code == 302
    assert Delegation.objects.get().delegator_id == a.pk
    assert a.user.username in client.get(reverse("deployments:away")).content.decode()
