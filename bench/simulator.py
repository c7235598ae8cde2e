"""The simulator on 1,000,000 decided actions (issue 16 item 2; calibration: bench/calibration.py).
Target: each answers in under 1 s.

    DATABASE_URL=postgres://... .venv/bin/python bench/simulator.py [--actions 1000000] [--days 30] [--types 5]

Uses its own database `tl_bench_simulator` (dropped and created afresh). Generates `--actions`
decided proposals over `--days` days and `--types` action types — risk ~ Beta(2, 6), confidence
~ Beta(16, 1.1), human outcomes 8 approve : 1 edit : 1 reject : 1 escalate : 1 expire, and
those the default thresholds auto-execute counted as auto — and writes them as the decisions would have: into
ReplayCount cells on random shards (in SQL, in one statement). Then times `simulate()` for a
looser and a stricter candidate (median of `--repeat` runs) and reports the cells read.
Prints figures; asserts nothing.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scratchdb import scratch_django, scratch_drop  # noqa: E402

BENCH_DB = "tl_bench_simulator"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--types", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = scratch_django(BENCH_DB)
    from django.db import connection
    from django.utils import timezone

    from deployments.models import ReplayCount
    from deployments.policy import Thresholds
    from deployments.services import deployment_create
    from deployments.simulator import replay_counts_fold, simulate

    deployment = deployment_create(slug="bench-sim", stage="supervised")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Beta variates by the ratio of gammas is not in SQL; powers of uniforms give the same
        # skew (most risk low, most confidence high), which is all the cell counts need.
        cursor.execute(
            f"""
            INSERT INTO {ReplayCount._meta.db_table}
                (deployment_id, day, action_type, risk_band, confidence_band, needs_human, outcome, shard, n, seconds)
            SELECT dep, day, t, rb, cb, nh,
                   -- what the current thresholds (0.3, 0.95) auto-executed has no human outcome
                   CASE WHEN NOT nh AND rb < 6 AND cb >= 95 THEN 'auto' ELSE o END,
                   sh, count(*), sum(sec) FROM (
                SELECT %(dep)s AS dep, current_date - (g %% %(days)s) AS day, 'type.' || (g %% %(types)s) AS t,
                       least(19, floor(power(random(), 2.5) * 20))::int AS rb,
                       least(99, greatest(0, ceil((1 - power(random(), 4) * 0.4) * 100) - 1))::int AS cb,
                       random() < 0.02 AS nh,
                       (ARRAY['approve','approve','approve','approve','approve','approve','approve','approve',
                              'edit','reject','escalate','expire'])[1 + floor(random() * 12)::int] AS o,
                       floor(random() * 8)::int AS sh, 20 + random() * 200 AS sec
                FROM generate_series(1, %(n)s) g
            ) a GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
            """,  # noqa: S608 -- our table name
            {"dep": deployment.pk, "days": args.days, "types": args.types, "n": args.actions},
        )
        cursor.execute("ANALYZE " + ReplayCount._meta.db_table)
    load_s = time.perf_counter() - started
    cells = ReplayCount.objects.filter(deployment=deployment).count()
    print(f"wrote {args.actions:,} decided actions as {cells:,} cell rows in {load_s:.1f} s")
    # The hourly fold (deployments.fold_evidence) leaves one row per cell for each past day.
    started = time.perf_counter()
    replay_counts_fold(before=timezone.now().date(), batch=20000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ReplayCount._meta.db_table)
    folded = ReplayCount.objects.filter(deployment=deployment).count()
    print(f"folded past days' shards: {folded:,} rows ({time.perf_counter() - started:.1f} s)")
    rows = []
    for name, candidate in (
        ("looser (auto_max_risk 0.5, auto_min_confidence 0.9)", Thresholds(auto_max_risk=0.5, auto_min_confidence=0.9)),
        (
            "stricter (auto_max_risk 0.1, auto_min_confidence 0.99)",
            Thresholds(auto_max_risk=0.1, auto_min_confidence=0.99),
        ),
    ):
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            result = simulate(deployment=deployment, candidate=candidate, days=args.days)
            times.append(time.perf_counter() - t)
        median = statistics.median(times)
        routes = result["overall"]["routes"]
        print(f"{name}: median {median * 1000:.1f} ms; current {routes['current']} → candidate {routes['candidate']}")
        rows.append({"name": f"simulate, {name}", "value": round(median * 1000, 1), "unit": "ms", "n": args.actions})
    scratch_drop(url)
    worst = max(r["value"] for r in rows)
    result = {
        "bench": "simulator",
        "params": {
            "actions": args.actions,
            "days": args.days,
            "types": args.types,
            "cell_rows": cells,
            "after_fold": folded,
        },
        "rows": rows,
        "target": {
            "description": "simulate over 1,000,000 decided actions in < 1 s",
            "met": worst < 1000,
        },
    }
    print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
