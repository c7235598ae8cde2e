"""Benchmark: the reviewer queue, "claim next" and the admin changelist at 1k and 1M actions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tl_bench_queue .venv/bin/python bench/queue_pages.py

Uses one PostgreSQL database per size, named after DATABASE_URL's (default tl_bench_queue):
tl_bench_queue_1000 and tl_bench_queue_1000000, created if missing and migrated. Bulk-loads
the actions with one INSERT ... SELECT generate_series (--reuse keeps a database that already
holds n actions) and times requests through Django's test client in-process (middleware,
views, templates and SQL: the server's share of a request, without network), alternating the
sizes round by round so load from other processes affects both alike. Prints p50/p95 and the
SQL query count of each page.
Target: at 1M rows no more than 1.5x the 1k time, at most 10 queries a page.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")  # no per-request log lines in the figures
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tl_bench_queue")

import argparse  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from _scratchdb import ACTION_COLUMNS, column_defaults_in_the_database  # noqa: E402
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
ASSIGNED = 5  # the reviewer is assigned to all 5 (the filter still runs), so page 2 is full at 1k too


BASE_NAME = settings.DATABASES["default"]["NAME"]


def use_database(name: str) -> None:
    """Point the default connection at another database (reconnects on the next query)."""
    connection.close()
    connection.settings_dict["NAME"] = name


def ensure_database(name: str) -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("bench/queue_pages.py needs PostgreSQL: set DATABASE_URL")
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    use_database(name)
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
    column_defaults_in_the_database(ProposedAction)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} ({ACTION_COLUMNS})
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


PAGES = [
    "reviewer queue, first page",
    "reviewer queue, page 2 (keyset cursor)",
    '"claim next" (POST /queue/next)',
    "nav queue counts (GET /queue/counts)",
    "admin changelist of ProposedAction",
]


class Scenario:
    """One database with n actions, and signed-in clients for it."""

    def __init__(self, n: int, reuse: bool) -> None:
        self.n = n
        self.db = f"{BASE_NAME}_{n}"
        ensure_database(self.db)
        self.reviewer, admin = people()
        if not (reuse and ProposedAction.objects.count() == n):
            load(n)
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")  # flush the bulk load now, not while measuring
        self.rc = Client()
        self.rc.force_login(self.reviewer.user)
        self.ac = Client()
        self.ac.force_login(admin)
        first = self.rc.get("/queue/")
        assert first.content.count(b"<tr data-id=") == 50, "the first page should be full"
        self.cursor = re.search(r'after=([^"&]+)', first.content.decode()).group(1)
        self.calls = [
            lambda: self.rc.get("/queue/"),
            lambda: self.rc.get("/queue/?after=" + self.cursor.replace("&amp;", "&")),
            lambda: self.rc.post("/queue/next", {"queue": "review"}),
            lambda: self.rc.get("/queue/counts"),
            lambda: self.ac.get("/admin/reviews/proposedaction/"),
        ]
        self.times: list[list[float]] = [[] for _ in PAGES]
        self.queries: list[int] = []

    def release(self) -> None:
        ProposedAction.objects.filter(claimed_by=self.reviewer.user).update(claimed_by=None, claimed_at=None)

    def round(self, timed: bool) -> None:
        use_database(self.db)
        for i, call in enumerate(self.calls):
            started = time.perf_counter()
            response = call()
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code in (200, 302), (PAGES[i], response.status_code)
            if timed:
                self.times[i].append(elapsed)
            self.release()

    def count_queries(self) -> None:
        use_database(self.db)
        for call in self.calls:
            with CaptureQueriesContext(connection) as ctx:
                call()
            self.queries.append(len(ctx.captured_queries))
            self.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,1000000", help="comma-separated numbers of actions")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--reuse", action="store_true", help="keep a database that already has n actions")
    args = parser.parse_args()
    scenarios = [Scenario(int(n), args.reuse) for n in args.sizes.split(",")]
    # Interleave the sizes round by round, so load from other processes hits them alike.
    for r in range(args.runs + 5):
        for scenario in scenarios:
            scenario.round(timed=r >= 5)
    for scenario in scenarios:
        scenario.count_queries()
    print()
    print(f"{'page':42}" + "".join(f"{f'{s.n:,} p50 ms':>15} {'p95':>7} {'SQL':>4}" for s in scenarios) + "  ratio")
    for i, page in enumerate(PAGES):
        cells, p50s = "", []
        for s in scenarios:
            t = sorted(s.times[i])
            p50s.append(statistics.median(t))
            cells += f"{p50s[-1]:15.1f} {t[int(len(t) * 0.95) - 1]:7.1f} {s.queries[i]:4d}"
        print(f"{page:42}{cells}  {p50s[-1] / p50s[0]:5.2f}x")
    print("\nSQL counts include BEGIN/COMMIT of a transaction; times are in-process (Django test client).")


if __name__ == "__main__":
    main()
