"""Payload rules at ingest (issue 16 item 3): one proposal with 10 CEL rules on its action type
against the same proposal with none. Target: at most 10 % slower.

    DATABASE_URL=postgres://... .venv/bin/python bench/rules.py [--requests 2000] [--rounds 5]

Uses its own database `tl_bench_rules` (dropped and created afresh). Two autonomous
deployments, one with 10 rules on `refund.issue` (none of which matches, so both store the same
rows: the route stays `auto`), one without. Each proposal is the ingest service itself,
`reviews.services.proposed_action_create` (routing, rules, the one-statement insert, commit),
without the HTTP layer: the HTTP layer's cost is the same with or without rules, so leaving
it out makes the ratio stricter, not looser. The two alternate in `--rounds` rounds so that a
shared machine's drift weighs on both alike. Reports the median and p99 per proposal and the
ratio of medians. Prints figures; asserts nothing.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scratchdb import scratch_django, scratch_drop  # noqa: E402

BENCH_DB = "tl_bench_rules"

RULES = [
    {"name": "big", "expression": "payload.amount_cents >= 5000000", "effect": "senior"},
    {"name": "crypto", "expression": "payload.currency == 'BTC'", "effect": "refuse"},
    {"name": "vip", "expression": "has(payload.vip) && payload.vip", "effect": "review"},
    {"name": "risky", "expression": "risk_score > 0.9", "effect": "review"},
    {"name": "unsure", "expression": "confidence < 0.2", "effect": "review"},
    {"name": "many items", "expression": "size(payload.items) > 50", "effect": "senior"},
    {"name": "odd sku", "expression": "payload.items.exists(i, i.sku.startsWith('X-'))", "effect": "review"},
    {"name": "no order", "expression": "!has(payload.order)", "effect": "refuse"},
    {"name": "test model", "expression": "model_version == 'test'", "effect": "refuse"},
    {"name": "note", "expression": "has(payload.note) && payload.note.contains('urgent')", "effect": "senior"},
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per deployment and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = scratch_django(BENCH_DB)
    from deployments.services import deployment_create

    plain = deployment_create(slug="plain", stage="autonomous")
    ruled = deployment_create(slug="ruled", stage="autonomous", payload_rules={"refund.issue": RULES})
    ruled.full_clean()
    from reviews.services import Proposal, proposed_action_create

    body = {
        "action_type": "refund.issue",
        "payload": {"amount_cents": 1200, "currency": "EUR", "order": "A-1", "items": [{"sku": "S-1", "qty": 1}]},
        "risk_score": 0.1,
        "confidence": 0.99,
    }
    deployments = {"none": plain, "10 rules": ruled}
    times: dict[str, list[float]] = {name: [] for name in deployments}

    def propose(deployment) -> None:
        action = proposed_action_create(deployment=deployment, proposal=Proposal(**body))
        assert action.route == "auto", action.route

    for deployment in deployments.values():  # warm up: caches, prepared statements, compiled rules
        for _ in range(100):
            propose(deployment)
    for _ in range(args.rounds):
        for name, deployment in deployments.items():
            for _ in range(args.requests):
                started = time.perf_counter()
                propose(deployment)
                times[name].append(time.perf_counter() - started)
    rows, medians = [], {}
    for name, samples in times.items():
        samples.sort()
        medians[name] = statistics.median(samples)
        p99 = samples[int(len(samples) * 0.99) - 1]
        rows.append(
            {
                "name": f"proposal, {name}",
                "p50_ms": round(medians[name] * 1000, 3),
                "p99_ms": round(p99 * 1000, 3),
                "n": len(samples),
            }
        )
        print(f"{name:>9}: median {medians[name] * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms over {len(samples)}")
    ratio = medians["10 rules"] / medians["none"]
    print(f"10 rules / none: {ratio:.3f}")
    scratch_drop(url)
    result = {
        "bench": "rules",
        "params": {"requests": args.requests, "rounds": args.rounds, "rules": len(RULES)},
        "rows": rows,
        "target": {
            "description": "ingest with 10 rules ≤ 10 % slower than none (median)",
            "met": ratio <= 1.10,
            "ratio": round(ratio, 3),
        },
    }
    print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
