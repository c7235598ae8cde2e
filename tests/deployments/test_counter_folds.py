"""Folding the shards of past evidence days and breaker minutes into one row each."""

from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.db.models import Sum
from django.utils import timezone

from deployments import tasks
from deployments.breakers import breaker_reading, minute_of
from deployments.models import BreakerCount, EvidenceCount
from deployments.selectors import daily_metrics
from deployments.services import breaker_counts_fold, evidence_add, evidence_counts_fold
from deployments.tasks import BREAKER_FOLD_AFTER, breakers_check_all, fold_evidence
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


def add(deployment, day, shard, n, total=0.0, metric="proposed.auto", action_type="invoice.match"):
    EvidenceCount.objects.create(
        deployment=deployment, day=day, action_type=action_type, metric=metric, shard=shard, n=n, total=total
    )


def rows(deployment, day):
    return sorted(
        EvidenceCount.objects.filter(deployment=deployment, day=day).values_list("action_type", "metric", "shard", "n")
    )


def test_past_days_fold_into_shard_zero_and_today_stays_sharded(deployment):
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    for shard, n in [(0, 1), (3, 2), (31, 4)]:
        add(deployment, yesterday, shard, n, total=n * 1.5)
    add(deployment, yesterday, 7, 5, metric="decision.approve")
    add(deployment, today - timedelta(days=9), 12, 6)
    add(deployment, today, 5, 7)
    add(deployment, today, 9, 8)
    before = {day: metrics for day, metrics in daily_metrics(deployment, days=10)}

    assert evidence_counts_fold(before=today) == 4  # shard rows folded away: 3, 31, 7 and 12

    assert rows(deployment, yesterday) == [
        ("invoice.match", "decision.approve", 0, 5),
        ("invoice.match", "proposed.auto", 0, 7),
    ]
    folded = EvidenceCount.objects.get(deployment=deployment, day=yesterday, metric="proposed.auto")
    assert folded.total == pytest.approx(7 * 1.5)
    assert rows(deployment, today - timedelta(days=9)) == [("invoice.match", "proposed.auto", 0, 6)]
    assert rows(deployment, today) == [
        ("invoice.match", "proposed.auto", 5, 7),
        ("invoice.match", "proposed.auto", 9, 8),
    ]
    # What every reader sees is unchanged.
    assert dict(daily_metrics(deployment, days=10)) == before
    assert evidence_counts_fold(before=today) == 0  # safe to repeat


def test_fold_runs_in_batches_and_keeps_deployments_and_types_apart(deployment):
    other_deployment = DeploymentFactory()
    day = timezone.now().date() - timedelta(days=2)
    for shard in range(1, 6):
        add(deployment, day, shard, shard)
        add(deployment, day, shard, 10, action_type="refund.issue")
        add(other_deployment, day, shard, 100)
    total = EvidenceCount.objects.aggregate(n=Sum("n"))["n"]

    assert evidence_counts_fold(before=day + timedelta(days=1), batch=4) == 15

    assert rows(deployment, day) == [
        ("invoice.match", "proposed.auto", 0, 15),
        ("refund.issue", "proposed.auto", 0, 50),
    ]
    assert rows(other_deployment, day) == [("invoice.match", "proposed.auto", 0, 500)]
    assert EvidenceCount.objects.aggregate(n=Sum("n"))["n"] == total


def test_the_task_folds_every_day_before_today(deployment):
    today = timezone.now().date()
    add(deployment, today - timedelta(days=1), 4, 3)
    add(deployment, today, 4, 3)
    assert fold_evidence() == 1
    assert fold_evidence() == 0
    assert rows(deployment, today) == [("invoice.match", "proposed.auto", 4, 3)]


def minutes(deployment):
    return sorted(
        BreakerCount.objects.filter(deployment=deployment).values_list("minute", "metric", "shard", "n"),
    )


def test_past_breaker_minutes_fold_into_shard_zero_and_the_reading_is_unchanged(deployment):
    now = timezone.now()
    current = minute_of(now)
    for ago, metric, shard, n in [
        (30, "proposed.auto", 0, 1),
        (30, "proposed.auto", 17, 2),
        (30, "proposed.auto", 31, 3),
        (30, "execution.failed.auto", 5, 4),
        (200, "proposed.auto", 9, 5),  # in the baseline
        (1, "proposed.auto", 3, 6),  # the minute before: not yet folded
        (0, "proposed.auto", 8, 7),
    ]:
        BreakerCount.objects.create(
            deployment=deployment, minute=current - timedelta(minutes=ago), metric=metric, shard=shard, n=n
        )
    before = breaker_reading(deployment, now=now)

    assert breaker_counts_fold(before=current - timedelta(minutes=1)) == 4

    assert minutes(deployment) == [
        (current - timedelta(minutes=200), "proposed.auto", 0, 5),
        (current - timedelta(minutes=30), "execution.failed.auto", 0, 4),
        (current - timedelta(minutes=30), "proposed.auto", 0, 6),
        (current - timedelta(minutes=1), "proposed.auto", 3, 6),
        (current, "proposed.auto", 8, 7),
    ]
    assert breaker_reading(deployment, now=now) == before
    assert breaker_counts_fold(before=current - timedelta(minutes=1)) == 0


def test_the_breaker_check_folds_the_minutes_that_are_over(deployment):
    now = timezone.now()
    old = minute_of(now - BREAKER_FOLD_AFTER - timedelta(minutes=1))
    recent = minute_of(now)
    for minute, shard in [(old, 4), (old, 6), (recent, 4)]:
        BreakerCount.objects.create(deployment=deployment, minute=minute, metric="proposed.auto", shard=shard, n=1)
    breakers_check_all()
    assert minutes(deployment) == [(old, "proposed.auto", 0, 2), (recent, "proposed.auto", 4, 1)]


def test_a_failing_fold_never_holds_a_breaker_back(deployment, monkeypatch):
    evidence_add(deployment_id=deployment.pk, action_type="t.a", metric="execution.executed.auto", n=17)
    evidence_add(deployment_id=deployment.pk, action_type="t.a", metric="execution.failed.auto", n=3)

    def broken_fold(**kwargs):
        raise DatabaseError("the fold failed")

    monkeypatch.setattr(tasks, "breaker_counts_fold", broken_fold)
    with pytest.raises(DatabaseError):  # the task fails, visibly...
        tasks.breakers_check_all()
    deployment.refresh_from_db()
    assert deployment.breaker_tripped  # ...after the checks, which tripped the breaker
