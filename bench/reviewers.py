"""Benchmark: the reviewer-quality page and the kappa evidence on 1M decisions by 50 reviewers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tl_bench_reviewers .venv/bin/python bench/reviewers.py

Loads (into its own database, created if missing and migrated; --reuse keeps one already
loaded) 1M decided actions with their 1M Decision rows, by 50 reviewers over 365 days, then
derives from those rows, in SQL, exactly the counters the write path adds in each decision's
transaction: ReviewerCount (decision.<verb> with seconds, ttd.* buckets, partner agreement of
the 5% double-reviewed pairs), ReviewerStreak (longest and current approve run, by window
functions over each reviewer's decisions) and the double.* evidence counters of the gate.
Then times, through Django's test client in-process (middleware, view, template, SQL: the
server's share of a request), the quality page over 365 days, the gate page and
GET /api/v1/deployment/evidence (blind and double-review kappa evidence), and prints p50/p95,
query counts and the tables each one read (no page reads the decisions table).
Target: each under 300 ms.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tl_bench_reviewers")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from _scratchdb import ACTION_COLUMNS, column_defaults_in_the_database  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from deployments.models import Deployment, EvidenceCount, Member, ReviewerCount, ReviewerStreak  # noqa: E402
from deployments.services import api_key_create, deployment_create, member_create  # noqa: E402
from reviews.models import Decision, ProposedAction  # noqa: E402

REVIEWERS = 50
DAYS = 365


def ensure_database() -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("bench/reviewers.py needs PostgreSQL: set DATABASE_URL")
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    call_command("migrate", verbosity=0)


def setup_people() -> tuple[Deployment, list[int], Member]:
    deployment = Deployment.objects.filter(slug="bench-humans").first() or deployment_create(
        slug="bench-humans", stage="approval"
    )
    Deployment.objects.filter(pk=deployment.pk).update(stage_entered_at=timezone.now() - timedelta(days=DAYS))
    ids = []
    for i in range(REVIEWERS):
        member = Member.objects.filter(user__username=f"bench-r{i:02d}").first() or member_create(
            username=f"bench-r{i:02d}", role="reviewer", deployments=[deployment]
        )
        ids.append(member.user_id)
    senior = Member.objects.filter(user__username="bench-senior").first() or member_create(
        username="bench-senior", role="senior", deployments=[deployment]
    )
    deployment.refresh_from_db()
    return deployment, ids, senior


def load(deployment: Deployment, user_ids: list[int], n: int) -> None:
    """n decided actions and their decisions; then the counters those decisions produce."""
    actions, decisions = ProposedAction._meta.db_table, Decision._meta.db_table
    started = time.perf_counter()
    pk = int(deployment.pk)
    with connection.cursor() as c:
        c.execute(f"TRUNCATE {decisions}, {actions} RESTART IDENTITY CASCADE")
    column_defaults_in_the_database(ProposedAction, Decision)
    with connection.cursor() as c:
        c.execute(f"DELETE FROM {ReviewerCount._meta.db_table}")
        c.execute(f"DELETE FROM {ReviewerStreak._meta.db_table}")
        c.execute(f"DELETE FROM {EvidenceCount._meta.db_table} WHERE deployment_id = {pk}")
        # Verb by a hash of i: 85% approve, 7% edit, 8% reject; reviewers 0-4 approve 99.5% in < 5 s.
        verb = (
            "CASE WHEN i % 50 < 5 THEN CASE WHEN i % 200 = 0 THEN 'reject' ELSE 'approve' END "
            "WHEN (i / 50 * 7919) % 100 < 7 THEN 'edit' "
            "WHEN (i / 50 * 7919) % 100 < 15 THEN 'reject' ELSE 'approve' END"
        )
        seconds = "CASE WHEN i % 50 < 5 THEN (i % 4) + 0.5 ELSE 3 + (i / 50 * 104729) % 400 END"
        c.execute(
            f"""
            INSERT INTO {actions} ({ACTION_COLUMNS}, review_sample)
            SELECT {pk}, 'refund.issue', 'ext-' || i, NULL, jsonb_build_object('order', 'ORD-' || i),
                md5(i::text) || md5((i + 1)::text), NULL, '', 0.2, 0.9, 'm-1', '', false, '',
                'approval', 'review', CASE WHEN v.verb = 'reject' THEN 'rejected' ELSE 'approved' END, '',
                now() - make_interval(days => (i % {DAYS})::int), now() - make_interval(days => (i % {DAYS})::int),
                NULL, NULL, '', NULL, NULL, false, '', NULL, CASE WHEN (i / 50) % 20 = 0 THEN 'double' ELSE '' END
            FROM generate_series(1::bigint, {int(n)}) AS i CROSS JOIN LATERAL (SELECT {verb} AS verb) v
            """,  # noqa: S608 -- generated numbers only
        )
        c.execute(
            f"""
            INSERT INTO {decisions} (action_id, verb, actor_id, from_status, to_status, reason,
                payload_before, payload_after, claimed_at, seconds_to_decide, created_at)
            SELECT a.id, v.verb, (ARRAY{user_ids}::int[])[1 + (a.id % {REVIEWERS})], 'pending_review', a.status, '',
                NULL, NULL, NULL, s.seconds, a.decided_at
            FROM {actions} a CROSS JOIN LATERAL (SELECT a.id AS i) x
            CROSS JOIN LATERAL (SELECT {verb.replace("i %", "x.i %").replace("(i /", "(x.i /")} AS verb) v
            CROSS JOIN LATERAL (SELECT {seconds.replace("i %", "x.i %").replace("(i /", "(x.i /")} AS seconds) s
            """  # noqa: S608 -- generated numbers only
        )
        print(f"loaded {n:,} actions and decisions in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        # The counters of those decisions, as reviews.services writes them (deployments.reviewers).
        rc = ReviewerCount._meta.db_table
        c.execute(
            f"""
            INSERT INTO {rc} (deployment_id, user_id, day, metric, shard, n, total)
            SELECT {pk}, actor_id, created_at::date, 'decision.' || verb, 0, count(*), sum(seconds_to_decide)
            FROM {decisions} GROUP BY actor_id, created_at::date, verb
            UNION ALL
            SELECT {pk}, actor_id, created_at::date,
                CASE WHEN seconds_to_decide < 5 THEN 'ttd.lt5' WHEN seconds_to_decide < 10 THEN 'ttd.lt10'
                     WHEN seconds_to_decide < 30 THEN 'ttd.lt30' WHEN seconds_to_decide < 60 THEN 'ttd.lt60'
                     WHEN seconds_to_decide < 300 THEN 'ttd.lt300' ELSE 'ttd.ge300' END, 0, count(*), 0
            FROM {decisions} GROUP BY 1, 2, 3, 4
            """,  # noqa: S608
        )
        # Double-reviewed pairs (5% of actions): partner agreement per reviewer, 80% matching.
        c.execute(
            f"""
            INSERT INTO {rc} (deployment_id, user_id, day, metric, shard, n, total)
            SELECT {pk}, d.actor_id, d.created_at::date,
                   CASE WHEN (a.id / 50 / 20) % 5 = 0 THEN 'double.hh.differ' ELSE 'double.hh.same' END, 0, count(*), 0
            FROM {decisions} d JOIN {actions} a ON a.id = d.action_id WHERE a.review_sample = 'double'
            GROUP BY 1, 2, 3, 4
            """,  # noqa: S608
        )
        # Longest and current run of approvals per reviewer (gaps and islands).
        c.execute(
            f"""
            INSERT INTO {ReviewerStreak._meta.db_table} (deployment_id, user_id, current, longest)
            WITH ordered AS (
                SELECT actor_id, verb, id,
                       sum(CASE WHEN verb = 'approve' THEN 0 ELSE 1 END) OVER (PARTITION BY actor_id ORDER BY id) AS run
                FROM {decisions}),
            runs AS (SELECT actor_id, run, count(*) FILTER (WHERE verb = 'approve') AS n, max(id) AS last
                     FROM ordered GROUP BY actor_id, run)
            SELECT {pk}, actor_id,
                   (array_agg(n ORDER BY last DESC))[1], max(n)
            FROM runs GROUP BY actor_id
            """,  # noqa: S608
        )
        # The gate's evidence counters of the same decisions, one folded row per day and metric.
        ec = EvidenceCount._meta.db_table
        c.execute(
            f"""
            INSERT INTO {ec} (deployment_id, day, action_type, metric, shard, n, total)
            SELECT {pk}, created_at::date, 'refund.issue', 'decision.' || verb, 0, count(*), sum(seconds_to_decide)
            FROM {decisions} GROUP BY 2, 4
            UNION ALL
            SELECT {pk}, d.created_at::date, 'refund.issue', m.metric, 0, count(*), 0
            FROM {decisions} d JOIN {actions} a ON a.id = d.action_id
            CROSS JOIN LATERAL (VALUES
                (CASE WHEN (a.id / 50 / 20) % 5 = 0 THEN 'double.hh.differ' ELSE 'double.hh.same' END),
                (CASE WHEN (a.id / 50 / 20) % 5 = 0 THEN 'double.hh.agree_change' WHEN (a.id / 50 / 20) % 7 = 0
                      THEN 'double.hh.change_change' ELSE 'double.hh.agree_agree' END)) m(metric)
            WHERE a.review_sample = 'double' GROUP BY 2, 4
            UNION ALL
            SELECT {pk}, d.created_at::date, 'refund.issue',
                   CASE WHEN d.verb = 'approve' THEN 'double.ai.auto_agree' ELSE 'double.ai.auto_change' END,
                   0, count(*), 0
            FROM {decisions} d JOIN {actions} a ON a.id = d.action_id WHERE a.review_sample = 'double' GROUP BY 2, 4
            UNION ALL
            SELECT {pk}, created_at::date, 'refund.issue',
                   CASE WHEN id % 10 < 8 THEN 'blind.agree' ELSE 'blind.disagree' END, 0, count(*), 0
            FROM {decisions} WHERE id % 20 = 7 GROUP BY 2, 4
            """,  # noqa: S608
        )
        for table in (actions, decisions, rc, ec, ReviewerStreak._meta.db_table):
            c.execute(f"VACUUM ANALYZE {table}")
    counts = ReviewerCount.objects.filter(deployment=deployment).count()
    print(f"derived {counts:,} reviewer counter rows in {time.perf_counter() - started:.1f} s")


def timed(client: Client, url: str, rounds: int, **headers) -> dict:
    client.get(url, **headers)  # warm
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url, **headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        client.get(url, **headers)
    tables = sorted({t for q in queries.captured_queries for t in re.findall(r"FROM \"?(\w+)", q["sql"] or "")})
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
        "n": rounds,
        "queries": len(queries.captured_queries),
        "tables": tables,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the data already loaded")
    args = parser.parse_args()
    ensure_database()
    deployment, user_ids, senior = setup_people()
    if not (args.reuse and Decision.objects.count() == args.decisions):
        load(deployment, user_ids, args.decisions)
    client = Client()
    client.force_login(senior.user)
    _, raw = api_key_create(deployment=deployment)
    rows = []
    for name, url, headers in (
        ("reviewer-quality page, 365 days", f"/deployments/{deployment.slug}/reviewers/?days=365", {}),
        ("gate page (blind, double review, kappa, flagged split)", f"/deployments/{deployment.slug}/gate/", {}),
        (
            "GET /api/v1/deployment/evidence (kappa evidence)",
            "/api/v1/deployment/evidence",
            {"HTTP_AUTHORIZATION": f"Bearer {raw}"},
        ),
    ):
        result = timed(client, url, args.rounds, **headers)
        print(
            f"{name}: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, {result['queries']} queries, "
            f"tables {', '.join(result['tables'])}"
        )
        rows.append({"name": name, **result})
    met = all(r["p95_ms"] < 300 for r in rows) and not any("reviews_decision" in r["tables"] for r in rows)
    evidence = client.get("/api/v1/deployment/evidence", HTTP_AUTHORIZATION=f"Bearer {raw}").json()["humans"]
    print("evidence:", json.dumps(evidence["double"]["human_human_kappa"]), json.dumps(evidence["flagged"]))
    result = {
        "bench": "reviewers",
        "params": {"decisions": args.decisions, "reviewers": REVIEWERS, "days": DAYS},
        "rows": [{k: v for k, v in r.items() if k != "tables"} for r in rows],
        "target": {"description": "each page p95 < 300 ms server time, no scan of decisions", "met": met},
    }
    print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
