"""Benchmark: the reviewer queue, "claim next" and the admin changelist at 1k and 1M actions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tl_bench_queue .venv/bin/python bench/queue.py

Uses its own PostgreSQL database (created if missing; default tl_bench_queue), migrates it,
bulk-loads actions with one INSERT ... SELECT generate_series per size, and times requests
through Django's test client in-process (middleware, views, templates and SQL: the server's
share of a request, without network). Prints p50/p95 and the SQL query count of each page.
Target: at 1M rows no more than 1.5x the 1k time, at most 10 queries a page.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named queue.py: keep its folder off sys.path so `import queue` is the stdlib's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tl_bench_queue")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from deployments.models import Deployment, Member  # noqa: E402
from deployments.services import deployment_create, member_create  # noqa: E402
from reviews.models import ProposedAction  # noqa: E402

DEPLOYMENTS = 5
ASSIGNED = 3  # the reviewer works 3 of the 5 deployments


def ensure_database() -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("bench/queue.py needs PostgreSQL: set DATABASE_URL")
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    call_command("migrate", verbosity=0)


def people() -> tuple[Member, object]:
    deployments = []
    for i in range(DEPLOYMENTS):
        slug = f"bench-{i}"
        existing = Deployment.objects.filter(slug=slug).first()
        deployments.append(existing or deployment_create(slug=slug, stage="supervised"))
    reviewer = member_create(username="bench-reviewer", role="reviewer", deployments=deployments[:ASSIGNED])
    user_model = get_user_model()
    admin = user_model.objects.filter(username="bench-admin").first() or user_model.objects.create_superuser(
        "bench-admin", "", "bench-admin-pw"
    )
    return reviewer, admin


def load(n: int) -> None:
    """Replace every action with n generated ones: 10% pending review, 2% pending senior,
    10% rejected, the rest auto-executed (5% of those audit samples), oldest first by id."""
    ids = list(Deployment.objects.filter(slug__startswith="bench-").order_by("slug").values_list("id", flat=True))
    table = ProposedAction._meta.db_table
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE reviews_decision, reviews_proposedaction RESTART IDENTITY CASCADE")
        cursor.execute(
            f"""
            INSERT INTO {table} (
                deployment_id, action_type, external_id, idempotency_key, payload, proposal_sha256,
                final_payload, payload_sha256, risk_score, confidence, model_version, rationale,
                needs_human, callback_url, stage, route, status, reason, created_at, decided_at,
                executed_at, expires_at, result_error, claimed_by_id, claimed_at, audit_sample,
                audit_verdict, comparison)
            SELECT
                (ARRAY{ids}::bigint[])[1 + (i / 10) % {len(ids)}],
                (ARRAY['refund.issue', 'invoice.match', 'ticket.route', 'account.unlock'])[1 + (i / 7) % 4],
                'ext-' || i, NULL,
                jsonb_build_object('order', 'ORD-' || i, 'amount_cents', (i * 37) % 100000,
                                   'currency', 'EUR', 'note', repeat('x', 40)),
                md5(i::text) || md5((i + 1)::text),
                NULL, '', ((i * 7919) % 1000) / 1000.0, 0.5 + ((i * 104729) % 500) / 1000.0, 'm-1', 'because',
                false, '', 'supervised',
                CASE st.s WHEN 'pending_review' THEN 'review' WHEN 'pending_senior' THEN 'senior'
                          WHEN 'rejected' THEN 'review' ELSE 'auto' END,
                st.s, '', now() - make_interval(secs => {n} - i), NULL, NULL,
                CASE WHEN st.s LIKE 'pending%' THEN now() + interval '24 hours' END, '', NULL, NULL,
                (st.s = 'executed' AND i % 20 = 2), '', NULL
            FROM generate_series(1::bigint, {n}) AS i
            CROSS JOIN LATERAL (SELECT CASE WHEN i % 10 = 0 THEN 'pending_review'
                                            WHEN i % 50 = 1 THEN 'pending_senior'
                                            WHEN i % 10 = 3 THEN 'rejected'
                                            ELSE 'executed' END AS s) AS st
            """  # noqa: S608 -- generated numbers only
        )
        cursor.execute(f"VACUUM ANALYZE {table}")
    pending = ProposedAction.objects.in_review_queue().count()
    print(f"loaded {n:,} actions ({pending:,} pending review) in {time.perf_counter() - started:.1f} s")


def measure(label: str, call, runs: int, after=None) -> dict:
    for _ in range(5):
        call()
        if after:
            after()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 302), (label, response.status_code)
        if after:
            after()
    with CaptureQueriesContext(connection) as ctx:
        call()
    if after:
        after()
    times.sort()
    return {
        "page": label,
        "p50": statistics.median(times),
        "p95": times[int(len(times) * 0.95) - 1],
        "queries": len(ctx.captured_queries),
    }


def run(n: int, runs: int, reviewer: Member, admin) -> list[dict]:
    load(n)
    rc = Client()
    rc.force_login(reviewer.user)
    ac = Client()
    ac.force_login(admin)
    first = rc.get("/queue/")
    assert first.content.count(b"<tr data-id=") == 50, "the first page should be full"

    def release():
        ProposedAction.objects.filter(claimed_by=reviewer.user).update(claimed_by=None, claimed_at=None)

    return [
        measure("reviewer queue, first page", lambda: rc.get("/queue/"), runs),
        measure("reviewer queue, page 100 (keyset)", lambda: rc.get("/queue/", {"after": cursor_at(reviewer)}), runs),
        measure('"claim next" (POST /queue/next)', lambda: rc.post("/queue/next", {"queue": "review"}), runs, release),
        measure("nav queue counts", lambda: rc.get("/queue/counts"), runs),
        measure("admin changelist of ProposedAction", lambda: ac.get("/admin/reviews/proposedaction/"), runs),
    ]


_cursor_cache: dict = {}


def cursor_at(reviewer: Member) -> str:
    """A cursor 5,000 items into the reviewer's queue (or the last item, if fewer)."""
    key = ProposedAction.objects.count()
    if key not in _cursor_cache:
        from reviews.selectors import cursor_encode, member_deployment_ids, queue_queryset

        qs = queue_queryset(queue="review", deployment_ids=member_deployment_ids(reviewer))
        depth = min(5000, qs.count() - 1)
        _cursor_cache[key] = cursor_encode(qs[depth])
    return _cursor_cache[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,1000000", help="comma-separated numbers of actions")
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()
    ensure_database()
    reviewer, admin = people()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {n: run(n, args.runs, reviewer, admin) for n in sizes}
    print()
    header = f"{'page':40} " + " ".join(f"{f'{n:,} p50 ms':>14} {'p95':>7} {'SQL':>4}" for n in sizes)
    print(header + (f" {'ratio':>6}" if len(sizes) > 1 else ""))
    for i, row in enumerate(results[sizes[0]]):
        cells = []
        for n in sizes:
            r = results[n][i]
            cells.append(f"{r['p50']:14.1f} {r['p95']:7.1f} {r['queries']:4d}")
        ratio = results[sizes[-1]][i]["p50"] / row["p50"] if len(sizes) > 1 else None
        print(f"{row['page']:40} " + " ".join(cells) + (f" {ratio:6.2f}x" if ratio else ""))


if __name__ == "__main__":
    main()
