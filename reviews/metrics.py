"""Prometheus metrics read from the database at scrape time.

Every figure comes from shared state (PostgreSQL), never from one process's memory, so any
number of web and worker processes give the same answer and scaling out changes nothing.
Request metrics per process come from django-prometheus (multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set).
"""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from deployments.counters import counters_sum
from deployments.models import Deployment
from deployments.policy import STAGE_ORDER
from reviews.models import ProposedAction


class TrustladderCollector(Collector):
    """Queue depths, proposals by route, decisions by outcome, time to decision, breakers."""

    def collect(self) -> Iterator:
        deployments = {d.pk: d for d in Deployment.objects.all()}
        slug = {pk: d.slug for pk, d in deployments.items()}

        depth = GaugeMetricFamily(
            "trustladder_queue_depth", "Actions waiting for a person, by queue.", labels=["deployment", "queue"]
        )
        pending = ProposedAction.objects.pending().values("deployment_id", "status").annotate(n=Count("id")).order_by()
        seen = set()
        for row in pending:
            queue = "review" if row["status"] == ProposedAction.Status.PENDING_REVIEW else "senior"
            depth.add_metric([slug[row["deployment_id"]], queue], row["n"])
            seen.add((row["deployment_id"], queue))
        audit = ProposedAction.objects.in_audit_queue().values("deployment_id").annotate(n=Count("id")).order_by()
        for row in audit:
            depth.add_metric([slug[row["deployment_id"]], "audit"], row["n"])
            seen.add((row["deployment_id"], "audit"))
        for pk in deployments:
            for queue in ("review", "senior", "audit"):
                if (pk, queue) not in seen:
                    depth.add_metric([slug[pk], queue], 0)
        yield depth

        # Actions between approval and result: held by a run or a parent, claimed and running,
        # or with an unknown result waiting for reconciliation (the partial index action_in_flight).
        waiting = GaugeMetricFamily(
            "trustladder_actions_in_flight",
            "Actions held, executing, or with an unknown result, by status.",
            labels=["deployment", "status"],
        )
        S = ProposedAction.Status
        in_flight = (
            ProposedAction.objects.filter(status__in=(S.HELD, S.EXECUTING, S.UNKNOWN))
            .values("deployment_id", "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        counted = {(row["deployment_id"], row["status"]): row["n"] for row in in_flight}
        for pk in deployments:
            for status in (S.HELD, S.EXECUTING, S.UNKNOWN):
                waiting.add_metric([slug[pk], status.value], counted.get((pk, status), 0))
        yield waiting

        proposals = CounterMetricFamily(
            "trustladder_proposals", "Proposed actions, by route.", labels=["deployment", "route"]
        )
        decisions = CounterMetricFamily(
            "trustladder_decisions", "Decisions by people or the clock, by outcome.", labels=["deployment", "outcome"]
        )
        executions = CounterMetricFamily(
            "trustladder_executions", "Execution results reported by agents.", labels=["deployment", "status", "route"]
        )
        lifecycle = CounterMetricFamily(
            "trustladder_lifecycle_events",
            "Execution claims, unknown results, reconciliations, cancellations and deadline expiries (issue 15).",
            labels=["deployment", "event"],
        )
        seconds = CounterMetricFamily(
            "trustladder_decision_seconds", "Time from claim (or arrival) to decision.", labels=["deployment"]
        )
        decision_seconds: dict[int, list[float]] = {}
        for deployment_id, counts in counters_sum(by="deployment_id", totals=True).items():
            name = slug[deployment_id]
            for metric, n in counts.items():
                if metric.kind == "proposed":
                    proposals.add_metric([name, metric.rest], n)
                elif metric.kind == "decision":
                    decisions.add_metric([name, metric.rest], n)
                    if metric.rest != "escalate":
                        acc = decision_seconds.setdefault(deployment_id, [0.0, 0])
                        acc[0] += counts.total(metric)
                        acc[1] += n
                elif metric.kind == "execution":
                    status, _, route = metric.rest.partition(".")
                    executions.add_metric([name, status, route], n)
                elif metric.kind == "lifecycle":
                    lifecycle.add_metric([name, metric.rest], n)
        yield proposals
        yield lifecycle
        yield decisions
        yield executions
        for pk, (total, _count) in decision_seconds.items():
            seconds.add_metric([slug[pk]], total)
        yield seconds
        count = CounterMetricFamily("trustladder_decision_count", "Decisions timed.", labels=["deployment"])
        for pk, (_total, n) in decision_seconds.items():
            count.add_metric([slug[pk]], n)
        yield count

        stage = GaugeMetricFamily(
            "trustladder_stage", "Stage of the deployment: 1 shadow … 4 autonomous.", labels=["deployment"]
        )
        breaker = GaugeMetricFamily(
            "trustladder_breaker_tripped", "1 while the breaker is tripped.", labels=["deployment"]
        )
        paused = GaugeMetricFamily("trustladder_paused", "1 while the kill switch is on.", labels=["deployment"])
        ranks = {s.value: i + 1 for i, s in enumerate(STAGE_ORDER)}
        for d in deployments.values():
            stage.add_metric([d.slug], ranks[d.stage])
            breaker.add_metric([d.slug], 1 if d.breaker_tripped else 0)
            paused.add_metric([d.slug], 1 if d.paused else 0)
        yield stage
        yield breaker
        yield paused
