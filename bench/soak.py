"""Soak: agents proposing and reviewers deciding, for minutes, against a private stack.

    .venv/bin/python bench/soak.py                 # 10 minutes (TRUSTLADDER_SOAK_SECONDS)
    .venv/bin/python bench/soak.py --seconds 60    # a short run
    .venv/bin/python bench/soak.py --json out.json # also write the figures as JSON

Starts its own PostgreSQL (initdb in a temporary directory), Redis, gunicorn (production
settings, 2 workers), a Celery worker and beat, all on 127.0.0.1, and kills them at the end.
Agents POST /api/v1/actions with Idempotency-Keys over HTTP and report results of what they
may execute; reviewers (senior members) decide the queue through the same service functions
the browser's decide view calls; decisions with a callback URL are delivered to a local
webhook receiver when the deliveries app is installed. At the end everything is reconciled:

- errors: any HTTP answer other than 200/201, any broken connection, any unexpected
  domain error of a reviewer;
- lost: any accepted proposal missing or stored twice, any counter or audit event missing or
  doubled, any decision not stored exactly once, any decision not delivered.

Prints the figures (p50/p99 latencies of the API and of decisions) and exits 1 unless
errors and lost are both zero. Bounded: agents and reviewers stop at the deadline, every wait
has a timeout, and the stack is torn down whatever happens.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.stack import Stack  # noqa: E402
from tests.faults.traffic import Agents, reconcile  # noqa: E402

DEFAULT_SECONDS = float(os.environ.get("TRUSTLADDER_SOAK_SECONDS", "600"))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)  # nearest rank
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


class Reviewers:
    """Reviewer threads deciding pending actions of one deployment through reviews.services:
    approve (sometimes with an edited payload), reject or escalate; seniors decide what was
    escalated. Two reviewers may pick the same action: one wins, the other gets
    InvalidTransition, which is the contract (counted as `lost_race`, not an error)."""

    def __init__(self, *, deployment_id: int, usernames: list[str], deadline: float, pace: float) -> None:
        self.deployment_id, self.usernames, self.deadline, self.pace = deployment_id, usernames, deadline, pace
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.decided: dict[int, str] = {}  # action id -> final verb (approve/edit/reject)
        self.escalated: set[int] = set()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lost_race = 0
        self._threads = [
            threading.Thread(target=self._run, args=(name, i), daemon=True) for i, name in enumerate(usernames)
        ]

    def start(self) -> Reviewers:
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 60) -> None:
        self.stop_event.set()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(end - time.monotonic(), 0.1))

    def _run(self, username: str, index: int) -> None:
        from django.contrib.auth import get_user_model
        from django.db import connection

        from deployments.errors import InvalidTransition
        from reviews.models import ProposedAction
        from reviews.services import proposed_action_approve, proposed_action_escalate, proposed_action_reject

        rng = random.Random(index)  # noqa: S311
        user = get_user_model().objects.get(username=username)
        try:
            while not self.stop_event.is_set() and time.monotonic() < self.deadline:
                ids = list(
                    ProposedAction.objects.filter(
                        deployment_id=self.deployment_id, status__in=ProposedAction.PENDING_STATUSES
                    )
                    .order_by("created_at", "id")
                    .values_list("pk", "status", "payload")[:20]
                )
                if not ids:
                    time.sleep(0.05)
                    continue
                # Mostly its own share of the queue (as claims would give), sometimes anyone's, so
                # two reviewers do collide now and then and exactly one must win.
                mine = [row for row in ids if row[0] % len(self.usernames) == index]
                pool = mine if mine and rng.random() < 0.9 else ids
                action_id, status, payload = pool[rng.randrange(len(pool))]
                roll = rng.random()
                started = time.monotonic()
                try:
                    if roll < 0.05 and status == ProposedAction.Status.PENDING_REVIEW:
                        proposed_action_escalate(action_id=action_id, actor=user, reason="soak: second opinion")
                        verb = "escalate"
                    elif roll < 0.20:
                        proposed_action_reject(action_id=action_id, actor=user, reason="soak: not this one")
                        verb = "reject"
                    elif roll < 0.30:
                        edited = {**payload, "amount_cents": 1}
                        proposed_action_approve(action_id=action_id, actor=user, payload=edited, reason="soak: edited")
                        verb = "edit"
                    else:
                        proposed_action_approve(action_id=action_id, actor=user)
                        verb = "approve"
                except InvalidTransition:
                    with self.lock:
                        self.lost_race += 1
                    continue
                except Exception as exc:
                    with self.lock:
                        self.errors.append(f"{username} on {action_id}: {type(exc).__name__}: {exc}")
                    time.sleep(0.2)
                    continue
                elapsed = time.monotonic() - started
                with self.lock:
                    self.latencies.append(elapsed)
                    if verb == "escalate":
                        self.escalated.add(action_id)
                    else:
                        self.decided[action_id] = verb
                if self.pace:
                    time.sleep(self.pace)
        finally:
            connection.close()


def reconcile_decisions(conn, *, deployment_id: int, reviewers: Reviewers) -> list[str]:
    """Each decision a reviewer was told succeeded is stored exactly once, with its audit event."""
    problems: list[str] = []
    rows = conn.execute(
        "SELECT d.action_id, d.verb, count(*) FROM reviews_decision d JOIN reviews_proposedaction a "
        "ON a.id = d.action_id WHERE a.deployment_id = %s AND d.verb IN ('approve', 'edit', 'reject', 'escalate') "
        "GROUP BY d.action_id, d.verb",
        [deployment_id],
    ).fetchall()
    stored = {(a, v): n for a, v, n in rows}
    twice = [(a, v, n) for (a, v), n in stored.items() if n != 1]
    if twice:
        problems.append(f"decisions stored more than once: {twice[:5]}")
    told = {(a, v) for a, v in reviewers.decided.items()} | {(a, "escalate") for a in reviewers.escalated}
    if told != set(stored):
        problems.append(
            f"decisions told {len(told)} != stored {len(stored)} "
            f"(missing {list(told - set(stored))[:3]}, unknown {list(set(stored) - told)[:3]})"
        )
    statuses = dict(
        conn.execute(
            "SELECT id, status FROM reviews_proposedaction WHERE deployment_id = %s AND id = ANY(%s)",
            [deployment_id, list(reviewers.decided)],
        ).fetchall()
    )
    expected = {"approve": {"approved", "executed"}, "edit": {"approved", "executed"}, "reject": {"rejected"}}
    wrong = [(a, v, statuses.get(a)) for a, v in reviewers.decided.items() if statuses.get(a) not in expected[v]]
    if wrong:
        problems.append(f"actions whose status contradicts their decision: {wrong[:5]}")
    audited = conn.execute(
        "SELECT count(*) FROM deployments_auditevent WHERE deployment_id = %s AND verb IN "
        "('reviews.action.approved', 'reviews.action.edited_and_approved', 'reviews.action.rejected', "
        "'reviews.action.escalated')",
        [deployment_id],
    ).fetchone()[0]
    if audited != len(told):
        problems.append(f"{audited} decision audit events for {len(told)} decisions")
    return problems


def _deliveries_installed() -> bool:
    from django.apps import apps

    return apps.is_installed("deliveries")


DECISION_EVENTS = ("action.approved", "action.rejected", "action.expired")
RESULT_EVENTS = ("action.executed", "action.failed", "action.unknown")


def reconcile_deliveries(conn, *, deployment_id: int, receiver, timeout: float) -> list[str]:
    """Every decision and every reported result with a callback URL is delivered, once each
    (webhook ids in the outbox = received; one outbox row per decision and per result)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = conn.execute(
            "SELECT count(*) FROM deliveries_delivery WHERE deployment_id = %s AND status <> 'delivered'",
            [deployment_id],
        ).fetchone()[0]
        if pending == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    problems: list[str] = []
    if pending:
        problems.append(f"{pending} deliveries not delivered after {timeout:.0f}s")
    rows = conn.execute(
        "SELECT webhook_id, object_id, event_type FROM deliveries_delivery WHERE deployment_id = %s", [deployment_id]
    ).fetchall()
    outbox = {w for w, _o, _e in rows}
    received = set(receiver.by_webhook_id())
    if outbox != received:
        problems.append(f"outbox {len(outbox)} webhook ids != received {len(received)}")
    if receiver.invalid():
        problems.append(f"{len(receiver.invalid())} deliveries with an invalid signature")
    decided = conn.execute(
        "SELECT count(*) FROM reviews_decision d JOIN reviews_proposedaction a ON a.id = d.action_id "
        "WHERE a.deployment_id = %s AND d.verb IN ('approve', 'edit', 'reject', 'expire')",
        [deployment_id],
    ).fetchone()[0]
    results = conn.execute(
        "SELECT count(*) FROM reviews_proposedaction "
        "WHERE deployment_id = %s AND status IN ('executed', 'failed', 'unknown')",
        [deployment_id],
    ).fetchone()[0]
    by_kind = {"decision": 0, "result": 0, "other": 0}
    for _w, _o, event in rows:
        by_kind["decision" if event in DECISION_EVENTS else "result" if event in RESULT_EVENTS else "other"] += 1
    if by_kind["decision"] != decided:
        problems.append(f"{by_kind['decision']} decision deliveries for {decided} decisions")
    if by_kind["result"] != results:
        problems.append(f"{by_kind['result']} result deliveries for {results} reported results")
    if by_kind["other"]:
        problems.append(f"{by_kind['other']} deliveries of events the soak does not cause")
    if len({(o, e) for _w, o, e in rows}) != len(rows):
        problems.append("an action has two deliveries of one event")
    return problems


def run(*, seconds: float, agents_n: int, reviewers_n: int, pace: float) -> dict:
    with Stack(web_workers=2) as stack:
        stack.start()
        stack.start_worker(concurrency=2)
        stack.start_beat()
        seed = stack.seed(slug="soak", reviewers=reviewers_n)
        os.environ.update(stack.env)
        import django

        django.setup()

        receiver = None
        if _deliveries_installed():
            from tests.faults.receiver import Receiver

            receiver = Receiver(seed["webhook_secret"]).start()
        started = time.monotonic()
        end = started + seconds
        agents = Agents(
            base_url=stack.base_url,
            api_key=seed["key"],
            clients=agents_n,
            max_keys=10**7,
            deadline=end + 60,
            callback_url=receiver.url if receiver else None,
        ).start()
        reviewers = Reviewers(
            deployment_id=seed["deployment_id"], usernames=seed["reviewers"], deadline=end, pace=pace
        ).start()
        try:
            while time.monotonic() < end:
                time.sleep(min(1.0, max(end - time.monotonic(), 0)))
        finally:
            traffic = agents.stop()
            reviewers.stop()
        elapsed = time.monotonic() - started

        with stack.pg.connect() as conn:
            result = reconcile(conn, deployment_id=seed["deployment_id"], traffic=traffic)
            lost = list(result["problems"])
            lost += reconcile_decisions(conn, deployment_id=seed["deployment_id"], reviewers=reviewers)
            if receiver is not None:
                lost += reconcile_deliveries(conn, deployment_id=seed["deployment_id"], receiver=receiver, timeout=60)
            pending = conn.execute(
                "SELECT count(*) FROM reviews_proposedaction WHERE deployment_id = %s AND status IN "
                "('pending_review', 'pending_senior')",
                [seed["deployment_id"]],
            ).fetchone()[0]
        if receiver is not None:
            receiver.close()

    bad_status = {str(s): n for s, n in traffic.statuses.items() if s not in (200, 201)}
    errors = traffic.unexpected + traffic.abandoned + reviewers.errors + [f"{s}: {n}" for s, n in bad_status.items()]
    requests = sum(traffic.statuses.values())
    return {
        "seconds": round(elapsed, 1),
        "agents": agents_n,
        "reviewers": reviewers_n,
        "web_workers": 2,
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "accepted": len(traffic.accepted),
        "executed": result["executed"],
        "decisions": len(reviewers.decided) + len(reviewers.escalated),
        "lost_races": reviewers.lost_race,
        "pending_at_end": pending,
        "deliveries_checked": receiver is not None,
        "api_p50_ms": round(percentile(traffic.latencies, 50) * 1000, 1),
        "api_p99_ms": round(percentile(traffic.latencies, 99) * 1000, 1),
        "api_max_ms": round(max(traffic.latencies, default=float("nan")) * 1000, 1),
        "decision_p50_ms": round(percentile(reviewers.latencies, 50) * 1000, 1),
        "decision_p99_ms": round(percentile(reviewers.latencies, 99) * 1000, 1),
        "errors": len(errors),
        "lost": len(lost),
        "error_samples": errors[:10],
        "lost_samples": lost[:10],
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "statuses": {str(k): v for k, v in traffic.statuses.items()},
        "mean_attempts": round(statistics.fmean([a.attempts for a in traffic.accepted.values()] or [0]), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="how long to run (default 600)")
    parser.add_argument("--agents", type=int, default=4, help="concurrent agents (HTTP clients)")
    parser.add_argument("--reviewers", type=int, default=2, help="concurrent reviewers")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds a reviewer rests between decisions")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 3600:
        parser.error("--seconds must be between 1 and 3600")
    figures = run(seconds=args.seconds, agents_n=args.agents, reviewers_n=args.reviewers, pace=args.pace)
    print(f"soak: {figures['seconds']}s, {figures['agents']} agents, {figures['reviewers']} reviewers")
    print(
        f"  requests {figures['requests']} ({figures['requests_per_second']}/s), accepted {figures['accepted']}, "
        f"executed {figures['executed']}, decisions {figures['decisions']} (lost races {figures['lost_races']}), "
        f"still pending {figures['pending_at_end']}"
    )
    print(
        f"  API latency p50 {figures['api_p50_ms']} ms, p99 {figures['api_p99_ms']} ms, max {figures['api_max_ms']} ms;"
        f" decision p50 {figures['decision_p50_ms']} ms, p99 {figures['decision_p99_ms']} ms"
    )
    print(f"  errors {figures['errors']}, lost {figures['lost']}, deliveries checked: {figures['deliveries_checked']}")
    for line in figures["error_samples"] + figures["lost_samples"]:
        print(f"    {line}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    return 0 if figures["errors"] == 0 and figures["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
