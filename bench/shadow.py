"""Benchmark shadow-mode comparisons on PostgreSQL with real Celery workers.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tl_bench_shadow \
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/shadow.py --pairs 1000000 --workers 2

What it does (the database named by BENCH_DATABASE_URL is DROPPED and re-created):
1. migrates, bulk-loads `--pairs` shadow actions and their human outcomes with generate_series
   (5 action types, 2 model versions, 30 days; ~10% disagree under the rules below), plus two
   10,000-pair deployments for the per-row baseline and the same work batched in-process;
2. naive baseline: a per-row ORM loop (lock, load, compare, save, two counter upserts, one
   transaction per pair) on 10,000 pairs;
2b. the floor, measured in the same run: the database work alone (lock, fetch, write back a
   constant) on `--floor` pairs in one process; the workers' figure is also given as a ratio
   to it, so runs on a machine that is busier or quieter can be compared;
3. the production path in-process on 10,000 pairs (`shadow_compare_sweep`, batches of 1,000);
4. the production path with `--workers` Celery worker processes (`-P solo`): 1,000-id tasks
   as the outcomes API enqueues them, wall clock from the first enqueue until no pair is
   left, and each worker's peak RSS (VmHWM);
5. the evidence queries of the report page on the big deployment, and a check that the
   counters equal a full scan of the compared actions;
6. with --recompute, a rules change on the big deployment and the recompute it starts (one
   task, run by one of the workers), checked against a full scan again.
Prints every figure. Nothing is asserted on time.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _scratchdb import database_recreate  # noqa: E402 -- bench/ is the script's own folder

BENCH_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tl_bench_shadow")
os.environ["DATABASE_URL"] = BENCH_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DJANGO_DEBUG"] = "false"  # DEBUG keeps every query in memory
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")

RULES = {"field_tolerances": {"amount_cents": 5}, "case_insensitive": ["reason"], "lists_as_sets": ["tags"]}

ACTIONS_SQL = """
INSERT INTO reviews_proposedaction (deployment_id, action_type, external_id, idempotency_key, payload,
    proposal_sha256, final_payload, payload_sha256, risk_score, confidence, model_version, rationale,
    needs_human, callback_url, stage, route, status, reason, created_at, decided_at, executed_at, expires_at,
    result_error, claimed_by_id, claimed_at, audit_sample, audit_verdict, comparison)
SELECT %(dep)s, 'type.' || (i %% 5), 'X-' || i, NULL,
    jsonb_build_object('amount_cents', 1000 + i %% 500, 'order', 'A-' || i,
        'reason', CASE WHEN i %% 7 = 0 THEN 'Late' ELSE 'late' END,
        'tags', CASE WHEN i %% 3 = 0 THEN '["b", "a"]'::jsonb ELSE '["a", "b"]'::jsonb END,
        'customer', jsonb_build_object('id', i %% 9973, 'tier', 'gold')),
    '', NULL, '', 0.1, 0.9, 'model-' || (i %% 2), '', false, '', 'shadow', 'shadow', 'logged', '',
    now() - make_interval(days => i %% 30), NULL, NULL, NULL, '', NULL, NULL, false, '', NULL
FROM generate_series(1, %(n)s) AS i
"""

OUTCOMES_SQL = """
INSERT INTO reviews_shadowoutcome (deployment_id, external_id, action_type, payload, decided_by, decided_at,
    received_at)
SELECT %(dep)s, 'X-' || i,
    CASE WHEN i %% 50 = 0 THEN 'type.' || ((i + 1) %% 5) ELSE 'type.' || (i %% 5) END,
    jsonb_build_object(
        'amount_cents', 1000 + i %% 500 + CASE WHEN i %% 10 = 0 THEN 20 WHEN i %% 10 = 1 THEN 3 ELSE 0 END,
        'order', 'A-' || i, 'reason', 'late', 'tags', '["a", "b"]'::jsonb,
        'customer', jsonb_build_object('id', i %% 9973, 'tier', 'gold')),
    'human-' || (i %% 40), now(), now()
FROM generate_series(1, %(n)s) AS i
"""


def load(slug: str, n: int) -> int:
    from django.db import connection

    from deployments.models import Deployment

    deployment = Deployment.objects.create(slug=slug, name=slug, stage="shadow", comparison_rules=RULES)
    with connection.cursor() as cursor:
        cursor.execute(ACTIONS_SQL, {"dep": deployment.pk, "n": n})
        cursor.execute(OUTCOMES_SQL, {"dep": deployment.pk, "n": n})
    return deployment.pk


def naive_loop(deployment_id: int) -> tuple[int, float]:
    """The per-row way: one transaction, a lock, two loads, a save and two upserts per pair."""
    from django.db import transaction

    from deployments.counters import Metric, evidence_add
    from deployments.models import Deployment
    from reviews.models import ProposedAction
    from reviews.shadow.compare import Rules, compare_proposal
    from reviews.shadow.models import ShadowOutcome
    from reviews.shadow.services import shadow_tally_add_many

    ids = list(ProposedAction.objects.filter(deployment_id=deployment_id, status="logged").values_list("pk", flat=True))
    start = time.perf_counter()
    for pk in ids:
        with transaction.atomic():
            action = ProposedAction.objects.select_for_update().get(pk=pk)
            rules = Rules.from_json(Deployment.objects.get(pk=deployment_id).comparison_rules)
            outcome = ShadowOutcome.objects.get(deployment_id=deployment_id, external_id=action.external_id)
            result = compare_proposal(action, outcome.action_type, outcome.payload, rules)
            action.comparison, action.status = result, "compared"
            action.save(update_fields=["comparison", "status"])
            day = action.created_at.date()
            metric = Metric.SHADOW_AGREE if result["agree"] else Metric.SHADOW_DISAGREE
            evidence_add(deployment_id=deployment_id, action_type=action.action_type, metric=metric, day=day)
            key = (deployment_id, day, action.action_type, outcome.action_type, action.model_version)
            shadow_tally_add_many({key: [1, 0] if result["agree"] else [0, 1]})
    return len(ids), time.perf_counter() - start


FLOOR_SQL = """
SELECT a.id, a.payload, o.payload FROM reviews_proposedaction a
JOIN reviews_shadowoutcome o ON o.deployment_id = a.deployment_id AND o.external_id = a.external_id
WHERE a.deployment_id = %s AND a.route = 'shadow' AND a.status = 'logged' AND a.id > %s
ORDER BY a.id LIMIT 1000 FOR UPDATE OF a SKIP LOCKED
"""


def floor_loop(deployment_id: int) -> tuple[int, float]:
    """The floor of the same run: the database work alone, in one process, batches of 1,000.
    Each batch locks its pairs with the production join, fetches both payloads as text
    (no JSON parsing), and writes a constant comparison back in one UPDATE. No comparing,
    no counters, no audit: what any implementation must at least pay per pair."""
    from django.db import connection, transaction

    done, after = 0, 0
    start = time.perf_counter()
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(FLOOR_SQL, [deployment_id, after])
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            cursor.execute(
                "UPDATE reviews_proposedaction SET status = 'compared', "
                'comparison = \'{"agree": true, "diff": []}\'::jsonb WHERE id = ANY(%s)',
                [ids],
            )
        done += len(ids)
        after = ids[-1]
    return done, time.perf_counter() - start


def peak_rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


class Workers:
    """`count` Celery worker processes (-P solo: the task runs in the process we measure)."""

    def __init__(self, count: int) -> None:
        from config.celery_app import app

        self.app = app
        app.control.purge()
        env = {**os.environ, "DATABASE_URL": BENCH_URL}
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", "-P", "solo", "-l", "warning",
                 "-n", f"bench{i}@%h", "--without-mingle", "--without-gossip"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for i in range(count)
        ]  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(app.control.ping(timeout=1.0) or []) < count:
            pass
        self.idle_rss = [round(peak_rss_mb(p.pid)[1], 1) for p in self.procs]

    def peak_rss(self) -> list[float]:
        return [round(peak_rss_mb(p.pid)[0], 1) for p in self.procs]

    def queue_length(self) -> int:
        with self.app.connection_for_write() as conn:
            return conn.default_channel.client.llen("default")

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait(timeout=30)
        self.app.control.purge()


def run_compare(workers: Workers, deployment_id: int, chunk: int) -> dict:
    """Enqueue 1,000-id tasks as the outcomes API does; wall clock until every pair is compared.

    Progress is watched on the Redis queue (free) and confirmed with one count at the end: a
    count over the actions every half second would itself load the database it measures.
    """
    from reviews.models import ProposedAction
    from reviews.shadow.tasks import shadow_compare_actions_task

    ids = list(
        ProposedAction.objects.filter(deployment_id=deployment_id, status="logged")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    start = time.perf_counter()
    for i in range(0, len(ids), chunk):
        shadow_compare_actions_task.delay(ids[i : i + chunk])
    enqueued = time.perf_counter() - start
    logged = ProposedAction.objects.filter(deployment_id=deployment_id, route="shadow", status="logged")
    last_report = start
    while True:
        waiting = workers.queue_length()
        now = time.perf_counter()
        if waiting == 0 and not logged.exists():
            break
        if now - last_report > 20:
            done = len(ids) - waiting * chunk
            print(f"  … about {done:,} compared after {now - start:.0f} s ({done / (now - start):,.0f} pairs/s)")
            last_report = now
        time.sleep(0.25 if waiting == 0 else 1.0)
    return {"pairs": len(ids), "elapsed": time.perf_counter() - start, "enqueue": enqueued}


def run_recompute(deployment_id: int) -> dict:
    """Change the rules (tolerance on amount_cents 5 -> 25): one worker recomputes every pair."""
    from reviews.shadow.models import ShadowRecompute
    from reviews.shadow.services import comparison_rules_set

    rules = {**RULES, "field_tolerances": {"amount_cents": 25}}
    start = time.perf_counter()
    _, recompute = comparison_rules_set(deployment_id=deployment_id, rules=rules)
    while ShadowRecompute.objects.filter(pk=recompute.pk, status="running").exists():
        time.sleep(0.5)
    recompute.refresh_from_db()
    return {"elapsed": time.perf_counter() - start, "processed": recompute.processed, "changed": recompute.changed,
            "status": recompute.status}  # fmt: skip


def check_counters(deployment_id: int) -> str:
    from django.db import connection

    from reviews.shadow.selectors import shadow_evidence

    e = shadow_evidence(deployment_id=deployment_id)["overall"]
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE (comparison->>'agree')::boolean), count(*) FROM reviews_proposedaction "
            "WHERE deployment_id = %s AND status = 'compared'",
            [deployment_id],
        )
        scan_agree, scan_n = cursor.fetchone()
    scan_ms = (time.perf_counter() - start) * 1000
    ok = (scan_agree, scan_n) == (e["agree"], e["n"])
    return (
        f"full scan of the actions says {scan_agree:,}/{scan_n:,} agree ({scan_ms:.0f} ms); "
        f"counters say {e['agree']:,}/{e['n']:,} -> {'EQUAL' if ok else 'MISMATCH'}"
    )


def timed(fn, repeat: int = 5) -> tuple[float, float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--naive", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--floor", type=int, default=50_000, help="pairs for the database-only floor")
    parser.add_argument("--chunk", type=int, default=1000, help="action ids per task (the API enqueues <= 1000)")
    parser.add_argument("--recompute", action="store_true", help="also time a recompute of the big deployment")
    args = parser.parse_args()

    database_recreate(BENCH_URL)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from reviews.shadow.selectors import shadow_disagreements, shadow_evidence
    from reviews.shadow.services import shadow_compare_sweep

    call_command("migrate", verbosity=0)
    from _scratchdb import column_defaults_in_the_database

    from reviews.models import ProposedAction
    from reviews.shadow.models import ShadowOutcome

    column_defaults_in_the_database(ProposedAction, ShadowOutcome)
    print(
        f"PostgreSQL {connection.cursor().connection.info.server_version}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()} (the machine is shared: figures move with other work)"
    )

    start = time.perf_counter()
    big = load("bench-big", args.pairs)
    naive_dep = load("bench-naive", args.naive)
    batched_dep = load("bench-batched", args.naive)
    floor_dep = load("bench-floor", args.floor)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"loaded {args.pairs:,} + 2 × {args.naive:,} + {args.floor:,} pairs in {time.perf_counter() - start:.1f} s")

    floor_n, floor_s = floor_loop(floor_dep)
    floor_per = floor_s / floor_n
    print(f"floor (lock + fetch + write back, no compare), 1 proc: {floor_n:,} pairs in {floor_s:.1f} s "
          f"= {floor_n / floor_s:,.0f} pairs/s")  # fmt: skip

    n, naive_s = naive_loop(naive_dep)
    naive_per = naive_s / n
    print(f"naive per-row ORM loop:      {n:,} pairs in {naive_s:.1f} s = {n / naive_s:,.0f} pairs/s")

    start = time.perf_counter()
    m = shadow_compare_sweep(deployment_id=batched_dep)
    batched_s = time.perf_counter() - start
    print(
        f"batched, in-process, 1 proc: {m:,} pairs in {batched_s:.1f} s = {m / batched_s:,.0f} pairs/s"
        f"  ({naive_per / (batched_s / m):.1f}× faster per pair than naive)"
    )

    workers = Workers(args.workers)
    try:
        result = run_compare(workers, big, args.chunk)
        rate = result["pairs"] / result["elapsed"]
        print(
            f"batched, {args.workers} Celery workers:  {result['pairs']:,} pairs in {result['elapsed']:.1f} s "
            f"= {rate:,.0f} pairs/s ({naive_per * rate:.1f}× naive per pair); enqueue took {result['enqueue']:.1f} s"
        )
        ratio = (result["elapsed"] / result["pairs"]) / floor_per
        print(
            f"ratio to the floor: {ratio:.2f} (time per pair with {args.workers} workers / the 1-process floor's; "
            f"at this ratio 1,000,000 pairs take {ratio * floor_per * 1_000_000:.0f} s)"
        )
        print(f"worker peak RSS (VmHWM) MB: {workers.peak_rss()}  (idle before: {workers.idle_rss})")
        if args.pairs < 1_000_000:
            print(f"extrapolated to 1,000,000 pairs at this rate: {1_000_000 / rate:.0f} s")
        print("check: " + check_counters(big))

        first, median, worst = timed(lambda: shadow_evidence(deployment_id=big))
        e = shadow_evidence(deployment_id=big)
        print(
            f"evidence (overall, by type, by day, by model version, confusion) on {e['overall']['n']:,} pairs: "
            f"first {first * 1000:.0f} ms, median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        )
        print(
            f"  agreement {e['overall']['rate']:.4f} [{e['overall']['lower']:.4f}, {e['overall']['upper']:.4f}], "
            f"{len(e['by_action_type'])} types, {len(e['by_day'])} days, {len(e['by_model_version'])} versions"
        )
        first, median, worst = timed(lambda: shadow_disagreements(deployment_id=big, limit=26))
        print(f"disagreement list, first page: median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms")

        if args.recompute:
            r = run_recompute(big)
            print(
                f"recompute after a rules change ({r['status']}): {r['processed']:,} pairs in {r['elapsed']:.1f} s "
                f"= {r['processed'] / r['elapsed']:,.0f} pairs/s, {r['changed']:,} comparisons changed"
            )
            print(f"worker peak RSS (VmHWM) MB after the recompute: {workers.peak_rss()}")
            print("check: " + check_counters(big))
    finally:
        workers.stop()
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
