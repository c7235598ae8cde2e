"""Benchmark the calibration page's computation on 1,000,000 decided actions (issue 16 item 4).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tl_bench_calibration \
    .venv/bin/python bench/calibration.py --decisions 1000000

What it does (the database named by BENCH_DATABASE_URL is DROPPED and re-created):
1. migrates and writes `--decisions` outcomes of one deployment into a scratch table
   (generate_series: 30 days, 10 action types, confidence spread over [0.3, 1], outcomes that
   get better with confidence: human decisions, audit verdicts and execution results);
2. builds the calibration counters from them as the decision transactions would have (one
   row per day, type, metric and band; past days folded to shard 0, today on all 8 shards);
3. times `calibration_evaluate` (the page's and the API's computation) and the whole page
   through Django's test client, median of `--repeat`;
4. checks the counters against a full scan of the scratch table (n and good per kind).
Prints every figure and a BENCH-RESULT line. Nothing is asserted on time.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _scratchdb import database_recreate  # noqa: E402 -- bench/ is the script's own folder

BENCH_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tl_bench_calibration")
os.environ["DATABASE_URL"] = BENCH_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DJANGO_DEBUG"] = "false"
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")

# One outcome per decided action: its day, type, confidence, kind and whether it was good.
OUTCOMES_SQL = """
CREATE TABLE bench_outcome AS
SELECT (now() - make_interval(days => floor(r1 * 30)::int))::date AS day,
    'type.' || floor(r2 * 10)::int AS action_type,
    c, CASE WHEN r3 < 0.6 THEN 'decision' WHEN r3 < 0.8 THEN 'audit' ELSE 'execution' END AS kind,
    random() < c AS good
FROM (SELECT random() AS r1, random() AS r2, random() AS r3, 0.3 + 0.7 * random() AS c
      FROM generate_series(1, %(n)s) AS i) AS s
"""

# The counters as the transactions would have written them (band k: k/20 < c <= (k+1)/20).
COUNTERS_SQL = """
INSERT INTO deployments_calibrationcount
    (deployment_id, day, action_type, metric, band, shard, n, confidence_sum, confidence_sq)
SELECT %(dep)s, day, action_type,
    CASE kind WHEN 'decision' THEN CASE WHEN good THEN 'decision.approve'
                                        WHEN random() < 0.5 THEN 'decision.edit' ELSE 'decision.reject' END
              WHEN 'audit' THEN CASE WHEN good THEN 'audit.correct' ELSE 'audit.incorrect' END
              ELSE CASE WHEN good THEN 'execution.executed.auto' ELSE 'execution.failed.auto' END END AS metric,
    greatest(ceil(c * 20)::int - 1, 0) AS band,
    CASE WHEN day = current_date THEN floor(random() * 8)::int ELSE 0 END AS shard,
    count(*), sum(c), sum(c * c)
FROM bench_outcome GROUP BY 1, 2, 3, 4, 5, 6
ON CONFLICT (deployment_id, day, action_type, metric, band, shard) DO UPDATE
    SET n = deployments_calibrationcount.n + excluded.n,
        confidence_sum = deployments_calibrationcount.confidence_sum + excluded.confidence_sum,
        confidence_sq = deployments_calibrationcount.confidence_sq + excluded.confidence_sq
"""


def timed(fn, repeat: int) -> tuple[float, float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0] * 1000, statistics.median(times) * 1000, max(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    database_recreate(BENCH_URL)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from deployments.calibration import calibration_evaluate
    from deployments.models import CalibrationCount, Deployment, Member
    from tests.factories import MemberFactory

    call_command("migrate", verbosity=0)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()} (shared machine: figures move with other work)")
    deployment = Deployment.objects.create(slug="bench-cal", name="bench-cal", stage="supervised")
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(OUTCOMES_SQL, {"n": args.decisions})
        cursor.execute(COUNTERS_SQL, {"dep": deployment.pk})
        cursor.execute("ANALYZE")
    rows = CalibrationCount.objects.filter(deployment=deployment).count()
    print(f"{args.decisions:,} outcomes -> {rows:,} counter rows in {time.perf_counter() - start:.1f} s")

    first, median, worst = timed(lambda: calibration_evaluate(deployment=deployment), args.repeat)
    print(f"calibration_evaluate: first {first:.0f} ms, median {median:.0f} ms, max {worst:.0f} ms")
    t_first, t_median, t_worst = timed(
        lambda: calibration_evaluate(deployment=deployment, action_type="type.3"), args.repeat
    )
    print(f"one action type: median {t_median:.0f} ms, max {t_worst:.0f} ms")

    member = MemberFactory(role=Member.Role.ADMIN)
    client = Client()
    client.force_login(member.user)
    url = f"/deployments/{deployment.slug}/calibration/"
    assert client.get(url).status_code == 200
    p_first, p_median, p_worst = timed(lambda: client.get(url), args.repeat)
    print(f"whole page (view, chart, template): median {p_median:.0f} ms, max {p_worst:.0f} ms")

    c = calibration_evaluate(deployment=deployment)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT kind, count(*), count(*) FILTER (WHERE good) FROM bench_outcome GROUP BY kind")
        scan = {kind: (n, good) for kind, n, good in cursor.fetchall()}
    scan_ms = (time.perf_counter() - start) * 1000
    names = {"decision": "review", "audit": "audit", "execution": "execution"}
    ok = all((c["kinds"][names[k]]["n"], c["kinds"][names[k]]["good"]) == v for k, v in scan.items())
    print(f"full scan of the outcomes: {scan_ms:.0f} ms; counters {'EQUAL' if ok else 'MISMATCH'} to it")
    for kind, s in c["kinds"].items():
        print(f"  {kind}: n {s['n']:,}, observed {s['rate']}, ECE {s['ece']}, Brier {s['brier']}")
    print(f"  candidate auto_min_confidence: {c['candidate']['auto_min_confidence']}")
    print(f"load average at the end: {os.getloadavg()}")
    result = {
        "bench": "calibration",
        "params": {"decisions": args.decisions, "counter_rows": rows, "repeat": args.repeat},
        "rows": [
            {"name": "calibration_evaluate, deployment", "value": round(median, 1), "unit": "ms"},
            {"name": "calibration_evaluate, one action type", "value": round(t_median, 1), "unit": "ms"},
            {"name": "calibration page", "value": round(p_median, 1), "unit": "ms"},
            {"name": "full scan (for comparison)", "value": round(scan_ms, 1), "unit": "ms"},
        ],
        "target": {"description": "the page's computation under 1 s on 1M decided actions", "met": median < 1000},
        "notes": [f"counters equal the scan: {ok}", f"load average {os.getloadavg()[0]:.1f} on 2 cores"],
    }
    print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
