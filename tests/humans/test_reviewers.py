"""Reviewer quality (issue 17 item 3): per reviewer counters written with each decision, the
page, its flags."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from deployments.counters import Metric
from deployments.models import Member, ReviewerCount, ReviewerStreak
from deployments.reviewers import reviewer_counts_add, reviewer_rows, time_bucket
from deployments.validators import reviewer_flags_errors
from reviews.humans.blind import blind_answer_record
from reviews.services import proposed_action_approve, proposed_action_escalate, proposed_action_reject
from tests.factories import DeploymentFactory, MemberFactory
from tests.humans.support import sample

pytestmark = pytest.mark.django_db
M = Metric


@pytest.fixture
def d():
    return DeploymentFactory(stage="approval")


def counts(user) -> dict:
    return {(r.metric): r.n for r in ReviewerCount.objects.filter(user=user)}


def test_time_buckets():
    assert [time_bucket(s) for s in (0, 4.99, 5, 9.9, 10, 59, 299.9, 300, 1e9)] == [
        M.TTD_LT5,
        M.TTD_LT5,
        M.TTD_LT10,
        M.TTD_LT10,
        M.TTD_LT30,
        M.TTD_LT60,
        M.TTD_LT300,
        M.TTD_GE300,
        M.TTD_GE300,
    ]


def test_each_decision_adds_to_its_reviewer_and_the_streak(d):
    rita = MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user
    a = [sample(d, "") for _ in range(6)]
    for action in a[:3]:
        proposed_action_approve(action_id=action.pk, actor=rita)
    proposed_action_reject(action_id=a[3].pk, actor=rita, reason="no")
    proposed_action_escalate(action_id=a[4].pk, actor=rita, reason="senior please")
    proposed_action_approve(action_id=a[5].pk, actor=rita)
    c = counts(rita)
    assert (c["decision.approve"], c["decision.reject"], c["decision.escalate"]) == (4, 1, 1)
    assert sum(c[b] for b in c if b.startswith("ttd.")) == 6
    streak = ReviewerStreak.objects.get(user=rita, deployment=d)
    assert (streak.current, streak.longest) == (1, 3)  # escalation neither grows nor breaks it


def test_blind_answers_and_double_pairs_count_per_reviewer(d):
    rita = MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user
    action = sample(d, "blind")
    blind_answer_record(action_id=action.pk, actor=rita, decision="approve", payload=action.payload)
    assert counts(rita)["blind.agree"] == 1


def add(d, user, metric, n, total=0.0):
    reviewer_counts_add(deployment_id=d.pk, user_id=user.pk, day=timezone.now().date(), metrics={metric: (n, total)})


def test_flags(d):
    users = {name: MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user for name in "abcdef"}
    for user in users.values():
        add(d, user, M.DECISION_APPROVE, 90, 90 * 40)
        add(d, user, M.DECISION_REJECT, 10, 10 * 40)
        add(d, user, M.TTD_LT60, 100)
    add(d, users["a"], M.TTD_LT5, 60)  # 60 of 160 fast: not more than half
    add(d, users["b"], M.TTD_LT5, 200)  # 200 of 300 fast
    ReviewerStreak.objects.create(deployment=d, user=users["c"], current=3, longest=250)
    add(d, users["d"], M.DECISION_APPROVE, 5000)  # 10 of 5100 changed
    add(d, users["e"], M.DOUBLE_HH_SAME, 10)
    add(d, users["e"], M.DOUBLE_HH_DIFFER, 15)
    add(d, users["f"], M.BLIND_AGREE, 5)
    add(d, users["f"], M.BLIND_DISAGREE, 20)
    rows = {r.user_id: r for r in reviewer_rows(deployment=d, since=timezone.now().date())}
    flags = {name: rows[u.pk].flags for name, u in users.items()}
    assert flags == {"a": [], "b": ["fast"], "c": ["streak"], "d": ["never_changes"], "e": ["partners"], "f": ["blind"]}
    a = rows[users["a"].pk]
    assert a.decisions == 100 and a.mean_seconds == 40 and a.reject_rate == 0.1
    assert a.share_under_fast == pytest.approx(60 / 160)


def test_flags_wait_for_enough_decisions_and_follow_the_deployment(d):
    u = MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user
    add(d, u, M.DECISION_APPROVE, 49)
    add(d, u, M.TTD_LT5, 49)
    assert reviewer_rows(deployment=d, since=timezone.now().date())[0].flags == []
    d.reviewer_flags = {"min_decisions": 10, "fast_seconds": 5}
    assert reviewer_rows(deployment=d, since=timezone.now().date())[0].flags == ["fast", "never_changes"]


def test_window_leaves_out_older_days(d):
    u = MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user
    old = timezone.now().date() - timedelta(days=40)
    reviewer_counts_add(deployment_id=d.pk, user_id=u.pk, day=old, metrics={M.DECISION_APPROVE: (7, 0.0)})
    assert reviewer_rows(deployment=d, since=timezone.now().date() - timedelta(days=29)) == []


def test_settings_are_validated():
    assert reviewer_flags_errors({"fast_seconds": 30, "max_fast_share": 0.4}) == []
    assert reviewer_flags_errors({"fast_seconds": 7}) == ["fast_seconds: must be one of 5, 10, 30, 60, 300"]
    assert reviewer_flags_errors({"max_fast_share": 2}) == ["max_fast_share: must be between 0 and 1"]
    assert reviewer_flags_errors({"nope": 1}) and reviewer_flags_errors([])


def test_the_page_for_seniors_and_admins_with_constant_queries(d, django_assert_max_num_queries):
    url = f"/deployments/{d.slug}/reviewers/"
    users = [MemberFactory(role=Member.Role.REVIEWER, deployments=[d]).user for _ in range(5)]
    for u in users:
        add(d, u, M.DECISION_APPROVE, 100, 500)
        add(d, u, M.TTD_LT5, 100)
    reviewer = Client()
    reviewer.force_login(users[0])
    assert reviewer.get(url).status_code == 403
    outsider = Client()
    outsider.force_login(MemberFactory(role=Member.Role.SENIOR).user)
    assert outsider.get(url).status_code == 404
    senior = Client()
    senior.force_login(MemberFactory(role=Member.Role.SENIOR, deployments=[d]).user)
    with django_assert_max_num_queries(10):
        page = senior.get(url + "?days=90")
    html = page.content.decode()
    assert page.status_code == 200 and html.count('data-flag="fast"') == 5
    assert senior.get(url + "?days=abc").status_code == 200 and senior.get(url + "?days=-1").status_code == 200
    admin = Client()
    admin.force_login(MemberFactory(role=Member.Role.ADMIN).user)
    assert admin.get(url).status_code == 200
    assert admin.post(url).status_code == 405
