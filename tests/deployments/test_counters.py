"""deployments/counters.py: metric names, the one writer and the one summing reader."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deployments.counters import (
    BREAKER,
    BREAKER_METRICS,
    CounterDelta,
    Counts,
    Metric,
    UnknownMetric,
    counters_add,
    counters_add_many,
    counters_sum,
    evidence_add,
    evidence_deltas,
    minute_of,
)
from deployments.models import BreakerCount, EvidenceCount
from deployments.policy import Route
from reviews.models import Decision, ProposedAction
from reviews.shadow.models import ShadowAdjudication
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------


def test_every_name_the_writers_build_is_a_metric():
    """The names reviews builds from its choices: each route, decision verb, execution
    result, audit verdict and adjudication verdict names a Metric."""
    for route in Route:
        assert Metric.of("proposed", route) == f"proposed.{route.value}"
    for verb in ("approve", "edit", "reject", "escalate", "expire"):
        assert Decision.Verb(verb) and Metric.of("decision", verb).kind == "decision"
    for status in (ProposedAction.Status.EXECUTED, ProposedAction.Status.FAILED):
        for route in (Route.AUTO, Route.REVIEW, Route.SENIOR):
            assert Metric.of("execution", status, route).rest == f"{status}.{route}"
    assert {Metric.of("audit", v) for v in ("correct", "incorrect")} == set(Metric.of_kind("audit"))
    for verdict in ShadowAdjudication.Verdict:
        assert Metric.of("shadow.adjudicated", verdict) in Metric.of_kind("shadow")


def test_an_unknown_name_is_an_error_not_a_metric():
    with pytest.raises(UnknownMetric, match="'shadow.agre' is not an evidence metric"):
        Metric("shadow.agre")
    with pytest.raises(UnknownMetric):
        Metric.of("execution", "executed", "shadow")  # a shadow action is never executed
    assert issubclass(UnknownMetric, ValueError)
    assert Metric("shadow.agree") is Metric.SHADOW_AGREE


def test_the_breakers_watch_live_auto_executions_proposals_and_audits():
    assert {m.value for m in BREAKER_METRICS} == {
        "proposed.auto",
        "execution.executed.auto",
        "execution.failed.auto",
        "audit.correct",
        "audit.incorrect",
    }


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def test_an_unknown_metric_is_refused_at_write_and_nothing_is_written(deployment):
    with pytest.raises(UnknownMetric):
        evidence_add(deployment_id=deployment.pk, action_type="t.a", metric="decision.aprove")
    with pytest.raises(UnknownMetric):
        evidence_deltas(deployment_id=deployment.pk, action_type="t.a", metric="nope")
    with pytest.raises(UnknownMetric):
        CounterDelta(EvidenceCount, {"deployment_id": deployment.pk, "metric": "nope"}, {"n": 1})
    with pytest.raises(UnknownMetric):
        counters_add_many(
            model=EvidenceCount,
            keys=("deployment_id", "day", "action_type", "metric"),
            values=("n", "total"),
            rows={(deployment.pk, timezone.now().date(), "t.a", "nope"): (1, 0.0)},
            shards=1,
        )
    assert not EvidenceCount.objects.exists() and not BreakerCount.objects.exists()


def test_a_live_watched_event_counts_its_day_and_its_minute(deployment):
    at = timezone.now() - timedelta(minutes=5)
    deltas = evidence_deltas(deployment_id=deployment.pk, action_type="t.a", metric=Metric.PROPOSED_AUTO, at=at)
    assert [d.model for d in deltas] == [EvidenceCount, BreakerCount]
    counters_add(deltas)
    assert counters_sum(deployment_id=deployment.pk) == Counts({Metric.PROPOSED_AUTO: 1})
    assert counters_sum(BREAKER, deployment_id=deployment.pk, since=minute_of(at))[Metric.PROPOSED_AUTO] == 1
    assert counters_sum(BREAKER, deployment_id=deployment.pk, since=minute_of(at) + timedelta(minutes=1)) == Counts()


def test_unwatched_and_backdated_events_count_only_their_day(deployment):
    evidence_add(deployment_id=deployment.pk, action_type="t.a", metric=Metric.DECISION_APPROVE)
    evidence_add(deployment_id=deployment.pk, action_type="t.a", metric=Metric.PROPOSED_AUTO, day=timezone.now().date())
    assert EvidenceCount.objects.count() == 2 and not BreakerCount.objects.exists()


def test_counters_add_sums_equal_rows_into_one_statement(deployment, django_assert_num_queries):
    deltas = []
    for metric, n in [(Metric.SHADOW_AGREE, 1), (Metric.SHADOW_AGREE, 2), (Metric.SHADOW_DISAGREE, 1)]:
        deltas += evidence_deltas(deployment_id=deployment.pk, action_type="t.a", metric=metric, n=n)
    deltas += evidence_deltas(deployment_id=deployment.pk, action_type="t.a", metric=Metric.PROPOSED_AUTO)
    # One upsert for EvidenceCount, one for BreakerCount: one statement on PostgreSQL (CTEs).
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
        counters_add(deltas)
    counts = counters_sum(deployment_id=deployment.pk)
    assert (counts[Metric.SHADOW_AGREE], counts[Metric.SHADOW_DISAGREE], counts[Metric.PROPOSED_AUTO]) == (3, 1, 1)
    assert EvidenceCount.objects.filter(metric=Metric.SHADOW_AGREE).count() == 1  # summed before writing


def test_a_move_between_metrics_that_sums_to_nothing_writes_nothing(deployment, django_assert_num_queries):
    day = timezone.now().date()
    deltas = [
        *evidence_deltas(deployment_id=deployment.pk, day=day, action_type="t.a", metric=Metric.SHADOW_AGREE, n=1),
        *evidence_deltas(deployment_id=deployment.pk, day=day, action_type="t.a", metric=Metric.SHADOW_AGREE, n=-1),
    ]
    with django_assert_num_queries(0):
        counters_add(deltas)
    assert not EvidenceCount.objects.exists()


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def test_an_unknown_metric_is_refused_at_read(deployment):
    evidence_add(deployment_id=deployment.pk, action_type="t.a", metric=Metric.SHADOW_AGREE)
    counts = counters_sum(deployment_id=deployment.pk)
    assert counts[Metric.SHADOW_AGREE] == 1 and counts["shadow.agree"] == 1
    assert counts[Metric.SHADOW_DISAGREE] == 0  # a metric nothing counted reads 0 ...
    with pytest.raises(UnknownMetric):
        counts["shadow.agre"]  # ... a typo does not
    with pytest.raises(UnknownMetric):
        counts.total("nope")
    with pytest.raises(UnknownMetric):
        counters_sum(deployment_id=deployment.pk, metrics=["shadow.agre"])


def test_a_stored_name_that_is_no_metric_fails_the_read(deployment):
    EvidenceCount.objects.create(deployment=deployment, day=timezone.now().date(), action_type="t.a", metric="x.y")
    with pytest.raises(UnknownMetric):
        counters_sum(deployment_id=deployment.pk)


def test_counters_sum_groups_filters_and_sums_totals(deployment):
    other = DeploymentFactory()
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    for d, day, atype, metric, n, total in [
        (deployment, yesterday, "a", Metric.DECISION_APPROVE, 2, 10.0),
        (deployment, today, "a", Metric.DECISION_APPROVE, 1, 5.0),
        (deployment, today, "b", Metric.DECISION_REJECT, 4, 1.5),
        (other, today, "a", Metric.DECISION_APPROVE, 7, 0.0),
    ]:
        evidence_add(deployment_id=d.pk, action_type=atype, metric=metric, n=n, total=total, day=day)

    whole = counters_sum(deployment_id=deployment.pk, totals=True)
    assert whole == Counts(
        {Metric.DECISION_APPROVE: 3, Metric.DECISION_REJECT: 4},
        {Metric.DECISION_APPROVE: 15.0, Metric.DECISION_REJECT: 1.5},
    )
    assert whole.total(Metric.DECISION_APPROVE) == 15.0 and whole.total(Metric.DECISION_EDIT) == 0.0
    by_type = counters_sum(by="action_type", deployment_id=deployment.pk, since=today)
    assert by_type == {"a": Counts({Metric.DECISION_APPROVE: 1}), "b": Counts({Metric.DECISION_REJECT: 4})}
    by_day_type = counters_sum(by=("day", "action_type"), deployment_id=deployment.pk, until=today)
    assert by_day_type == {(yesterday, "a"): Counts({Metric.DECISION_APPROVE: 2})}
    per_deployment = counters_sum(
        by="deployment_id", deployment_ids=[deployment.pk, other.pk], metrics=[Metric.DECISION_APPROVE]
    )
    assert {pk: c[Metric.DECISION_APPROVE] for pk, c in per_deployment.items()} == {deployment.pk: 3, other.pk: 7}
    assert counters_sum(deployment_id=deployment.pk, metrics=[Metric.DECISION_EDIT]) == Counts()


def test_counters_sum_reads_across_shards_in_one_query(deployment, django_assert_num_queries):
    for _ in range(10):
        evidence_add(deployment_id=deployment.pk, action_type="t.a", metric=Metric.DECISION_EDIT)
    with django_assert_num_queries(1):
        assert counters_sum(by="action_type", deployment_id=deployment.pk)["t.a"][Metric.DECISION_EDIT] == 10


def test_breaker_minutes_are_read_in_their_window(deployment):
    now = minute_of(timezone.now())
    for minutes_ago in (0, 10, 70):
        counters_add(
            evidence_deltas(
                deployment_id=deployment.pk,
                action_type="t.a",
                metric=Metric.EXECUTION_FAILED_AUTO,
                at=now - timedelta(minutes=minutes_ago),
            )
        )
    window = counters_sum(BREAKER, deployment_id=deployment.pk, since=now - timedelta(minutes=60))
    assert window[Metric.EXECUTION_FAILED_AUTO] == 2
    before = counters_sum(BREAKER, deployment_id=deployment.pk, until=now - timedelta(minutes=10))
    assert before[Metric.EXECUTION_FAILED_AUTO] == 1
