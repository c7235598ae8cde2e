"""The audit log's hash chain (issue 16 item 7): what sealing and verifying cost, and what
chaining at write time would have cost the ingest path instead.

    DATABASE_URL=postgres://... .venv/bin/python bench/audit_chain.py [--events 200000] [--threads 8]

Uses its own database `tl_bench_audit` (dropped and created afresh): migrates it, writes
`--events` audit events in bulk, times `audit_chain_seal` (events/s) and `audit_chain_check`
(events/s). Then, on a scratch table, `--threads` writers each commit single-row inserts for
a few seconds, once plainly (what ingest does: the sealer chains later) and once chaining at
write time (advisory lock on the chain, read the head, hash, insert, commit: the lock is held
to commit), and reports both rates. Prints figures; asserts nothing.
"""

import argparse
import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scratchdb import scratch_django, scratch_drop  # noqa: E402

BENCH_DB = "tl_bench_audit"


def write_rate(url: str, *, threads: int, seconds: float, chained: bool) -> float:
    """Commits per second of `threads` writers inserting one row per transaction."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_chain")
        conn.execute("CREATE TABLE bench_chain (id bigserial PRIMARY KEY, body jsonb, seq bigint, h text)")
        conn.execute("INSERT INTO bench_chain (body, seq, h) VALUES ('{}', 0, repeat('0', 64))")
    stop = time.monotonic() + seconds
    counts = [0] * threads
    barrier = threading.Barrier(threads)

    def writer(i: int) -> None:
        with psycopg.connect(url) as conn:
            barrier.wait()
            body = json.dumps({"verb": "reviews.action.proposed", "data": {"risk": 0.1, "i": i}})
            while time.monotonic() < stop:
                with conn.transaction():
                    if chained:
                        conn.execute("SELECT pg_advisory_xact_lock(42)")
                        seq, head = conn.execute("SELECT seq, h FROM bench_chain ORDER BY seq DESC LIMIT 1").fetchone()
                        h = hashlib.sha256(bytes.fromhex(head) + body.encode()).hexdigest()
                        conn.execute("INSERT INTO bench_chain (body, seq, h) VALUES (%s, %s, %s)", [body, seq + 1, h])
                    else:
                        conn.execute("INSERT INTO bench_chain (body) VALUES (%s)", [body])
                counts[i] += 1

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    url = scratch_django(BENCH_DB)
    from django.db import connection

    from deployments.auditchain import audit_chain_check, audit_chain_seal

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO deployments_auditevent (verb, actor_label, object_type, object_id, reason, data, "
            "created_at, chain_hash) SELECT 'reviews.action.proposed', 'api-key:tl_bench', "
            "'reviews.proposedaction', g::text, '', jsonb_build_object('route', 'review', 'risk', 0.25, "
            "'confidence', 0.9, 'n', g), now(), '' FROM generate_series(1, %s) g",
            [args.events],
        )
    started = time.perf_counter()
    sealed = audit_chain_seal()
    seal_s = time.perf_counter() - started
    started = time.perf_counter()
    report = audit_chain_check()
    check_s = time.perf_counter() - started
    assert report.ok and sealed == args.events
    print(f"sealed {sealed} events in {seal_s:.1f} s ({sealed / seal_s:,.0f}/s); verified in {check_s:.1f} s")
    plain = write_rate(url, threads=args.threads, seconds=args.seconds, chained=False)
    chained = write_rate(url, threads=args.threads, seconds=args.seconds, chained=True)
    print(f"{args.threads} writers: plain inserts {plain:,.0f}/s, chained at write time {chained:,.0f}/s")
    scratch_drop(url)
    result = {
        "bench": "audit_chain",
        "params": {"events": args.events, "threads": args.threads},
        "rows": [
            {"name": "seal (periodic task)", "rps": round(sealed / seal_s), "n": sealed},
            {"name": "verify (audit_verify)", "rps": round(sealed / check_s), "n": sealed},
            {"name": f"commits/s, {args.threads} writers, sealed later (chosen)", "rps": round(plain)},
            {"name": f"commits/s, {args.threads} writers, chained at write time", "rps": round(chained)},
        ],
        "notes": [
            "Chaining at write time holds the chain's lock until commit, so writers commit one at a time; "
            "sealing afterwards leaves the ingest statement unchanged."
        ],
    }
    print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
