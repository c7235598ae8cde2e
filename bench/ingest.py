#!/usr/bin/env python
"""Ingest benchmark (issue 2): POST /api/v1/actions under gunicorn against two floors.

In one run, at the same concurrency:
  1. ingest  — POST /api/v1/actions (with an Idempotency-Key and an external_id, as agents
               send them) to gunicorn (config/gunicorn.conf.py, 2 workers; once with 4
               threads each, production's default, and once with sync workers, see
               --threads) on PostgreSQL, production settings;
  2. noop    — POST of the same body to /bench/noop on the same server: the cost of HTTP,
               gunicorn and Django's middleware with no work;
  3. insert  — raw psycopg: one single-row INSERT + COMMIT per operation, one connection per
               thread: the cost of a durable write on this PostgreSQL.
  4. batch   — (issue 15) POST /api/v1/actions/batch, lists of 1, 10 and 100 proposals of one
               run (--batches), on the judged server: proposals per second and CPU per
               proposal, against the single proposal's rate (target: lists of 100 >= 5x).
Prints requests/s, p50 and p99 of each, the CPU each process group spent per request, and the
targets (ingest >= 50% of the lower floor, the first --threads value being the one judged;
lists of 100 >= 5 times the single proposals' rate).
On each server, noop and ingest alternate in --rounds rounds (3 by default), each a share of
--requests, so that the machine speeding up or slowing down meanwhile (a shared VM does)
weighs on both alike; each measurement adds up its rounds. Before each round the database is
settled (ANALYZE, as autovacuum keeps a live one, and CHECKPOINT, so that no round pays for
the writes of the one before).

Everything runs on loopback, bounded in count (--requests) and time (--max-seconds). It uses
its own database (tl_bench_ingest by default, dropped and created afresh) and, when REDIS_URL
is set, Redis for the API rate limiter (as in production; the limit is set out of reach so the
limiter runs but never refuses).

    .venv/bin/python bench/ingest.py [--requests 3000] [--concurrency 16]

The last line of output is `BENCH-RESULT {json}` (see bench/README.md).
"""

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from _scratchdb import database_recreate

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BODY = {
    "action_type": "invoice.match",
    "payload": {"invoice": "INV-1042", "po": "PO-7731", "amount_cents": 129900, "currency": "EUR"},
    "risk_score": 0.12,
    "confidence": 0.97,
    "model_version": "matcher-2026-11",
    "rationale": "PO and invoice totals match; supplier and lines agree.",
}


# --------------------------------------------------------------------------------------
# Setup: database, server
# --------------------------------------------------------------------------------------
def database_urls(url: str) -> tuple[str, str]:
    """(url of the bench database, url of the maintenance database on the same server)."""
    parts = urlsplit(url)
    return url, urlunsplit(parts._replace(path="/postgres"))


def server_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRUSTLADDER_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRUSTLADDER_BENCH_NOOP": "1",
        # The limiter runs (its cost is measured) but never refuses.
        "TRUSTLADDER_API_RATE_LIMIT_PER_MINUTE": str(10**9),
    }
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def settle(database_url: str) -> None:
    """ANALYZE (the planner's statistics, as autovacuum keeps them on a live database) and
    CHECKPOINT (dirty pages written now, not during the next measurement)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):  # not a superuser: let them fall
            conn.execute("CHECKPOINT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    """gunicorn as production runs it: config/gunicorn.conf.py, sized by its variables."""
    gunicorn = Path(PYTHON).with_name("gunicorn")
    env = env | {
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    conf = ROOT / "config" / "gunicorn.conf.py"
    sizing = (
        [] if conf.exists() else ["--bind", env["GUNICORN_BIND"], "--workers", str(workers), "--threads", str(threads)]
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(gunicorn), *(["-c", str(conf)] if conf.exists() else []), *sizing, "config.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("gunicorn exited during start-up") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------
# Where the CPU went (Linux /proc): the ratio is a CPU budget on a machine this size
# --------------------------------------------------------------------------------------
def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server (gunicorn and its workers), PostgreSQL, Redis and
    this process (the load generator and the psycopg floor)."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups = {"server": 0.0, "postgres": 0.0, "redis": 0.0, "load generator": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        if int(pid) == os.getpid():
            groups["load generator"] += used
        elif int(pid) == server_pid or int(fields[1]) == server_pid:  # gunicorn and its workers
            groups["server"] += used
        elif cmd.startswith("postgres"):
            groups["postgres"] += used
        elif "redis-server" in cmd:
            groups["redis"] += used
    return groups


def cpu_per_request(used: dict[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request, by process group, from the seconds each group used."""
    return {name: round(seconds / max(requests, 1) * 1000, 2) for name, seconds in used.items()}


# --------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------
async def _http_request(port: int, raw: bytes) -> int:
    """One HTTP/1.1 request on a fresh connection (gunicorn's sync workers close it after each
    response); returns the status code after reading the whole response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        return status
    finally:
        writer.close()


def http_load(
    *, port: int, path: str, key: str, total: int, concurrency: int, max_seconds: float, batch: int = 0
) -> dict:
    """`total` requests; with `batch`, each a list of that many proposals of one run."""

    def request_bytes() -> bytes:
        # A fresh external_id each time, as agents send: the rejected-stays-rejected check runs.
        if batch:
            run = uuid.uuid4().hex
            items = [{**BODY, "external_id": f"ext-{run}-{i}"} for i in range(batch)]
            body = json.dumps({"run_id": f"run-{run}", "actions": items}).encode()
        else:
            body = json.dumps({**BODY, "external_id": f"ext-{uuid.uuid4().hex}"}).encode()
        headers = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return headers.encode() + body

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def run() -> float:
        nonlocal errors
        remaining = total
        stop_at = time.monotonic() + max_seconds

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.monotonic() < stop_at:
                remaining -= 1
                raw = request_bytes()
                t0 = time.perf_counter()
                try:
                    status = await _http_request(port, raw)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    expected = 201 if path.startswith("/api/") else 200
    errors += sum(n for status, n in statuses.items() if status != expected)
    return summarise(latencies, elapsed, errors, extra={"statuses": statuses, "latencies": latencies})


def combined(parts: list[dict]) -> dict:
    """One measurement from its rounds: all their requests over all their time."""
    latencies = [t for part in parts for t in part["latencies"]]
    statuses: dict[int, int] = {}
    for part in parts:
        for status, n in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    elapsed = sum(part["seconds"] for part in parts)
    return summarise(latencies, elapsed, sum(part["errors"] for part in parts), extra={"statuses": statuses})


def insert_load(*, database_url: str, total: int, concurrency: int, max_seconds: float) -> dict:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor "
            "(id bigserial PRIMARY KEY, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    remaining = total
    stop_at = time.monotonic() + max_seconds
    payload = json.dumps(BODY)
    barrier = threading.Barrier(concurrency + 1)

    def worker() -> None:
        nonlocal remaining, errors
        with psycopg.connect(database_url) as conn:
            barrier.wait()
            while time.monotonic() < stop_at:
                with lock:
                    if remaining <= 0:
                        return
                    remaining -= 1
                t0 = time.perf_counter()
                try:
                    conn.execute("INSERT INTO bench_floor (payload) VALUES (%s)", [payload])
                    conn.commit()
                except psycopg.Error:
                    conn.rollback()
                    with lock:
                        errors += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return summarise(latencies, time.perf_counter() - started, errors)


def summarise(latencies: list[float], elapsed: float, errors: int, extra: dict | None = None) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    return {
        "n": len(ordered),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "rps": round(len(ordered) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pct(50), 2),
        "p99_ms": round(pct(99), 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
        **(extra or {}),
    }


# --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests (or inserts) per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--threads",
        default="4,1",
        help="threads per worker, one server run each, comma-separated (1: sync workers, >1: gthread); "
        "the first is judged against the target (4: production's default)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="each server's two measurements alternate in this many rounds (a share of --requests each), "
        "so that a machine slowing down or speeding up meanwhile weighs on both alike",
    )
    parser.add_argument(
        "--batches",
        default="1,10,100",
        help="list sizes of POST /api/v1/actions/batch, measured on the judged server ('' for none); "
        "each measurement sends about --requests proposals",
    )
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time bound of each measurement")
    parser.add_argument("--warmup", type=int, default=300, help="requests sent (and not counted) first")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tl_bench_ingest"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    args = parser.parse_args()

    database_url = args.database_url
    print(f"# database {urlsplit(database_url).path.lstrip('/')} (recreated), redis {args.redis_url or 'none'}")
    database_recreate(database_url)
    env = server_env(database_url, args.redis_url)
    manage(env, "migrate", "--no-input", "-v0")
    manage(env, "create_deployment", "bench", "--stage", "supervised")
    key = manage(env, "create_api_key", "bench").strip().splitlines()[-1]

    configs = [int(t) for t in str(args.threads).split(",")]
    batch_sizes = [int(b) for b in str(args.batches).split(",") if b.strip()]
    results: dict[str, dict] = {}
    labels: dict[str, str] = {}
    for threads in configs:
        server_desc = f"{args.workers} sync workers" if threads == 1 else f"{args.workers} workers x {threads} threads"
        port = free_port()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-ingest-gunicorn-{port}.log"
        server = start_server(env, port, args.workers, threads, log)
        try:
            common = {"port": port, "key": key, "concurrency": args.concurrency, "max_seconds": args.max_seconds}
            for path in ("/bench/noop", "/api/v1/actions"):  # warm both workers, caches and connections
                http_load(path=path, total=args.warmup, **common)
            measured = [(f"noop/{threads}", "/bench/noop", 0), (f"ingest/{threads}", "/api/v1/actions", 0)]
            if threads == configs[0]:
                measured += [(f"batch{size}/{threads}", "/api/v1/actions/batch", size) for size in batch_sizes]
                if batch_sizes:
                    http_load(path="/api/v1/actions/batch", total=args.warmup // 10, batch=10, **common)
            rounds: dict[str, list[dict]] = {name: [] for name, _, _ in measured}
            cpu: dict[str, dict[str, float]] = {name: {} for name, _, _ in measured}
            for _ in range(args.rounds):
                for name, path, size in measured:
                    # About --requests proposals per measurement, whatever the list size.
                    share = max(1, args.requests // args.rounds // max(size, 1))
                    settle(database_url)
                    before = cpu_seconds(server.pid)
                    rounds[name].append(http_load(path=path, total=share, batch=size, **common))
                    for group, used in cpu_seconds(server.pid).items():
                        cpu[name][group] = cpu[name].get(group, 0.0) + used - before[group]
            for name, _, size in measured:
                results[name] = combined(rounds[name])
                proposals = results[name]["n"] * max(size, 1)
                results[name]["cpu_ms"] = cpu_per_request(cpu[name], proposals)
                results[name]["proposals_per_s"] = round(results[name]["rps"] * max(size, 1), 1)
                if size:
                    labels[name] = f"POST /api/v1/actions/batch x{size} ({server_desc})"
        finally:
            stop_server(server)
        labels[f"ingest/{threads}"] = f"POST /api/v1/actions ({server_desc})"
        labels[f"noop/{threads}"] = f"floor: trivial endpoint ({server_desc})"
    settle(database_url)
    results["insert"] = insert_load(
        database_url=database_url, total=args.requests, concurrency=args.concurrency, max_seconds=args.max_seconds
    )
    labels["insert"] = "floor: psycopg INSERT + COMMIT"

    ratios = {}
    for threads in configs:
        floor = min(results[f"noop/{threads}"]["rps"], results["insert"]["rps"])
        ratios[threads] = results[f"ingest/{threads}"]["rps"] / floor if floor else 0.0

    print(
        f"\nconcurrency {args.concurrency}, {args.requests} requests each "
        f"(server measurements in {args.rounds} alternating rounds), gunicorn {args.workers} workers"
    )
    print(f"{'measurement':<58} {'req/s':>9} {'prop/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in results.items():
        per_s = r.get("proposals_per_s", "")
        print(
            f"{labels[name]:<58} {r['rps']:>9.1f} {per_s:>9} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}"
        )
    print("\nCPU per request (ms), by process (lists: per proposal): the two cores are the budget both share")
    groups = list(next(r["cpu_ms"] for r in results.values() if "cpu_ms" in r))
    print(f"{'measurement':<58} " + " ".join(f"{g:>14}" for g in groups) + f" {'total':>8}")
    for name, r in results.items():
        if "cpu_ms" in r:
            cells = " ".join(f"{r['cpu_ms'][g]:>14.2f}" for g in groups)
            print(f"{labels[name]:<58} {cells} {sum(r['cpu_ms'].values()):>8.2f}")
    print()
    for threads, ratio in ratios.items():
        verdict = "met" if ratio >= 0.5 else "NOT met"
        print(f"ingest / lower floor, threads={threads}: {ratio:.3f} (target >= 0.50: {verdict})")

    # Lists of proposals (issue 15): proposals per second against single proposals'.
    single = results[f"ingest/{configs[0]}"]["rps"]
    speedups = {
        size: results[f"batch{size}/{configs[0]}"]["proposals_per_s"] / single if single else 0.0
        for size in batch_sizes
    }
    for size, speedup in speedups.items():
        judged = f" (target >= 5: {'met' if speedup >= 5 else 'NOT met'})" if size == 100 else ""
        print(f"lists of {size}: {speedup:.2f} x the single proposals' rate{judged}")

    fields = ("rps", "p50_ms", "p99_ms", "n", "errors")
    rows = [{"name": labels[name], **{k: r[k] for k in fields}} for name, r in results.items()]
    main_ratio = ratios[configs[0]]
    batch_met = speedups.get(100, 5.0) >= 5.0
    line = {
        "bench": "ingest",
        "params": {
            "concurrency": args.concurrency,
            "requests": args.requests,
            "workers": args.workers,
            "threads": configs,
            "rounds": args.rounds,
        },
        "rows": rows,
        "target": {
            "description": f"ingest >= 50% of the lower floor (threads={configs[0]})"
            + ("; lists of 100 >= 5x the single proposals' rate" if 100 in batch_sizes else ""),
            "ratio": round(main_ratio, 3),
            "met": main_ratio >= 0.5 and batch_met,
        },
        "notes": [f"ingest / lower floor with threads={t}: {r:.3f}" for t, r in ratios.items()]
        + [
            f"lists of {size}: {results[f'batch{size}/{configs[0]}']['proposals_per_s']} proposals/s, "
            f"{speedup:.2f} x the single proposals' rate"
            for size, speedup in speedups.items()
        ]
        + [
            f"CPU per {'proposal' if n.startswith('batch') else 'request'}, {labels[n]}: "
            + ", ".join(f"{group} {ms:.2f} ms" for group, ms in r["cpu_ms"].items())
            + f" (total {sum(r['cpu_ms'].values()):.2f} ms)"
            for n, r in results.items()
            if "cpu_ms" in r
        ],
    }
    print("BENCH-RESULT " + json.dumps(line))
    errors = sum(r["errors"] for r in results.values())
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
