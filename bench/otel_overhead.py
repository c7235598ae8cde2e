#!/usr/bin/env python
"""OpenTelemetry overhead (issue 18): what tracing costs a proposal when it is off, and on.

Each mode runs in its own process (OpenTelemetry sets its tracer provider once per process),
in-process through Django's test client, so only Django and the database are measured: N
proposals (POST /api/v1/actions, a route that waits for a person) after a warm-up, each mode
in --rounds alternating rounds.

  unset        OTEL_EXPORTER_OTLP_ENDPOINT unset, no traceparent header: nothing instrumented;
  unset+tp     unset, with the agent's traceparent header (read, checked, stored on the action),
               alternating request by request with `unset` in the same process (paired);
  set          set, exporting to a local OTLP/HTTP sink (batched, as in production).

Each request is timed twice: wall clock, and this process's CPU time (`time.process_time`:
Django, the client and the exporter's thread, not PostgreSQL), which a busy shared machine
disturbs far less than the wall clock.

Also the cost of the only code that runs per request while tracing is off: the header's
check (core.tracing.traceparent_clean), timed alone. The ratios are per request, against unset.

    DATABASE_URL=postgres://… .venv/bin/python bench/otel_overhead.py [--n 1500] [--rounds 3]

Uses the database given (migrated first), creating one deployment per run. The last line of
output is `BENCH-RESULT {json}`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _sink() -> str:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def child(mode: str, n: int) -> None:
    if mode == "set":
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = _sink()
    else:
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["TRUSTLADDER_API_RATE_LIMIT_PER_MINUTE"] = "0"
    os.environ["TRUSTLADDER_LOG_FORMAT"] = "console"
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.test import Client

    from deployments.services import api_key_create, deployment_create

    deployment = deployment_create(slug=f"bench-otel-{mode.replace('+', '-')}-{os.getpid()}", stage="approval")
    _, key = api_key_create(deployment=deployment)
    client = Client()
    plain = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    traced = {**plain, "HTTP_TRACEPARENT": TRACEPARENT}
    body = json.dumps(
        {"action_type": "refund.issue", "payload": {"amount_cents": 1200}, "risk_score": 0.5, "confidence": 0.5}
    )

    def one(headers: dict) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.post("/api/v1/actions", data=body, content_type="application/json", **headers)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert response.status_code == 201, response.content
        return wall, cpu

    for _ in range(min(200, n)):
        one(plain)
    # unset: alternate without and with the header (pairs); set: the header on every request.
    runs: dict[str, list[tuple[float, float]]] = {"unset": [], "unset+tp": []} if mode == "unset" else {mode: []}
    names = list(runs)
    for i in range(n):
        name = names[i % len(names)]
        runs[name].append(one(plain if name == "unset" else traced))
    for name, times in runs.items():
        walls, cpus = [t[0] for t in times], [t[1] for t in times]
        line = {
            "mode": name,
            "median_us": statistics.median(walls) * 1e6,
            "mean_us": statistics.fmean(walls) * 1e6,
            "cpu_mean_us": statistics.fmean(cpus) * 1e6,
        }
        print(json.dumps(line))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"  # DEBUG off, as in production
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=600)
    modes = ["unset", "unset+tp", "set"]
    results: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in ("unset", "set"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--n", str(args.n * (2 if mode == "unset" else 1))],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=True,
            )
            for raw in out.stdout.strip().splitlines():
                if not raw.startswith('{"mode"'):
                    continue  # a log line
                line = json.loads(raw)
                results[line["mode"]].append(line["median_us"])
                cpu[line["mode"]].append(line["cpu_mean_us"])
                print(
                    f"{line['mode']:9} wall median {line['median_us']:8.1f} µs  cpu mean {line['cpu_mean_us']:8.1f} µs",
                    flush=True,
                )

    sys.path.insert(0, str(ROOT))
    from core.tracing import traceparent_clean

    calls = 200_000
    started = time.perf_counter()
    for _ in range(calls):
        traceparent_clean(TRACEPARENT)
    check_us = (time.perf_counter() - started) / calls * 1e6

    median = {m: statistics.median(v) for m, v in results.items()}
    cpu_median = {m: statistics.median(v) for m, v in cpu.items()}
    share = check_us / cpu_median["unset"]
    rows = [{"name": f"proposal, {m} (wall median)", "value": round(median[m], 1), "unit": "us"} for m in modes] + [
        {"name": f"proposal, {m} (CPU)", "value": round(cpu_median[m], 1), "unit": "us"} for m in modes
    ]
    rows.append({"name": "traceparent check alone", "value": round(check_us, 3), "unit": "us"})
    summary = {
        "bench": "otel_overhead",
        "params": {"requests_per_round": args.n, "rounds": args.rounds},
        "rows": rows,
        "target": {
            "description": "tracing off (OTEL_EXPORTER_OTLP_ENDPOINT unset) costs a proposal under 1%",
            "met": share < 0.01,
            "ratio": round(share, 5),
            "cpu_ratio_unset_tp_to_unset": round(cpu_median["unset+tp"] / cpu_median["unset"], 3),
            "cpu_ratio_set_to_unset": round(cpu_median["set"] / cpu_median["unset"], 3),
            "wall_ratio_unset_tp_to_unset": round(median["unset+tp"] / median["unset"], 3),
            "wall_ratio_set_to_unset": round(median["set"] / median["unset"], 3),
        },
    }
    print(f"traceparent check alone: {check_us:.3f} µs per request ({share:.5f} of a proposal's CPU)")
    print("BENCH-RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
