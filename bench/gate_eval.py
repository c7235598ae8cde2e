"""How long one gate evaluation takes over a long stage window, from the counters alone.

    DATABASE_URL=postgres://... .venv/bin/python bench/gate_eval.py [days] [types]

Uses its own database `tl_bench_gate` next to DATABASE_URL's (created afresh, migrated,
dropped at the end). Creates a deployment with `days` days of counters for `types` action
types (all the metrics the gate reads, 2 shards each) and times gate_evaluate and the breaker
reading. Prints figures; asserts nothing.
"""

import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scratchdb import scratch_django, scratch_drop  # noqa: E402

URL = scratch_django("tl_bench_gate")

from django.utils import timezone  # noqa: E402

from deployments.breakers import breaker_reading  # noqa: E402
from deployments.counters import Metric  # noqa: E402
from deployments.gate import gate_evaluate  # noqa: E402
from deployments.models import Deployment, EvidenceCount  # noqa: E402

METRICS = [
    Metric.PROPOSED_AUTO,
    Metric.PROPOSED_REVIEW,
    Metric.DECISION_APPROVE,
    Metric.DECISION_EDIT,
    Metric.DECISION_REJECT,
    Metric.DECISION_EXPIRE,
    Metric.SLA_WITHIN,
    Metric.SLA_BREACHED,
    Metric.EXECUTION_EXECUTED_AUTO,
    Metric.EXECUTION_FAILED_AUTO,
    Metric.AUDIT_CORRECT,
    Metric.AUDIT_INCORRECT,
    Metric.SHADOW_AGREE,
    Metric.SHADOW_DISAGREE,
]


def main(days: int, types: int) -> None:
    now = timezone.now()
    d = Deployment.objects.create(slug=f"bench-gate-{int(time.time())}", name="bench", stage="supervised")
    Deployment.objects.filter(pk=d.pk).update(stage_entered_at=now - timedelta(days=days))
    d.refresh_from_db()
    rows = [
        EvidenceCount(
            deployment=d, day=(now - timedelta(days=i)).date(), action_type=f"type.{t}", metric=m, shard=s, n=7
        )
        for i in range(days)
        for t in range(types)
        for m in METRICS
        for s in range(2)
    ]
    started = time.perf_counter()
    EvidenceCount.objects.bulk_create(rows, batch_size=5000)
    print(f"inserted {len(rows)} counter rows in {time.perf_counter() - started:.1f} s")
    try:
        for name, fn in [
            ("gate_evaluate", lambda: gate_evaluate(deployment=d)),
            ("breaker_reading", lambda: breaker_reading(d)),
        ]:
            fn()
            timings = []
            for _ in range(20):
                t0 = time.perf_counter()
                fn()
                timings.append((time.perf_counter() - t0) * 1000)
            print(f"{name}: median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms over 20 runs")
    finally:
        scratch_drop(URL)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 365, int(sys.argv[2]) if len(sys.argv) > 2 else 10)
