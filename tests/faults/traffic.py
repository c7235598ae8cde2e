"""Agents streaming proposals at a stack, retrying the way the API asks them to, and the
reconciliation of what they were told against what the database holds.

An agent sends POST /api/v1/actions with an Idempotency-Key and retries *with the same key*
on 503 (database unavailable), on 409 `idempotency_key_in_flight` (a previous attempt with that
key died mid-request) and on a broken connection (the web worker died). When told `execute`,
it reports the result once, retrying the same way. Everything is bounded in count and time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import psycopg

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the output

RETRY_SLEEP = 0.2
REQUEST_TIMEOUT = 30.0


@dataclass
class Accepted:
    key: str
    action_id: int
    decision: str
    payload_sha256: str | None
    attempts: int
    latency: float  # seconds from the first attempt to the 201
    executed: bool = False


@dataclass
class Traffic:
    """What every agent saw: accepted keys, every status, and anything unexpected."""

    accepted: dict[str, Accepted] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # keys given up at the deadline
    latencies: list[float] = field(default_factory=list)  # every HTTP attempt, seconds
    lock: threading.Lock = field(default_factory=threading.Lock)

    def see(self, status: int | str, latency: float | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if latency is not None:
                self.latencies.append(latency)

    def count(self, *statuses: int | str) -> int:
        with self.lock:
            return sum(self.statuses[s] for s in statuses)

    @property
    def n_accepted(self) -> int:
        with self.lock:
            return len(self.accepted)

    def connection_errors(self) -> int:
        with self.lock:
            return sum(n for s, n in self.statuses.items() if isinstance(s, str) and s.startswith("conn:"))


def proposal_body(rng: random.Random, *, callback_url: str | None = None) -> dict:
    """Half auto-executed (low risk, high confidence), half for the reviewer queue."""
    auto = rng.random() < 0.5
    body = {
        "action_type": rng.choice(["refund.issue", "email.send", "ticket.close"]),
        "payload": {"amount_cents": rng.randint(100, 99_999), "order": f"A-{rng.randint(1, 10**9)}"},
        "risk_score": 0.1 if auto else 0.5,
        "confidence": 0.99 if auto else 0.8,
        "external_id": uuid.uuid4().hex[:12],
    }
    if callback_url:
        body["callback_url"] = callback_url
    return body


class Agents:
    """`clients` threads, each proposing with fresh Idempotency-Keys until stopped or `max_keys`
    have been used in all, every key retried until accepted or `deadline` (monotonic) passes."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        clients: int = 4,
        max_keys: int = 5000,
        deadline: float,
        report_results: bool = True,
        callback_url: str | None = None,
        seed: int = 0,
    ) -> None:
        self.base_url, self.api_key = base_url, api_key
        self.clients, self.max_keys, self.deadline = clients, max_keys, deadline
        self.report_results, self.callback_url = report_results, callback_url
        self.traffic = Traffic()
        self.stop_event = threading.Event()
        self._issued = 0
        self._issue_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(seed + i,), daemon=True) for i in range(clients)]

    def start(self) -> Agents:
        for t in self._threads:
            t.start()
        return self

    def stop(self, *, timeout: float = 60.0) -> Traffic:
        self.stop_event.set()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(end - time.monotonic(), 0.1))
        if any(t.is_alive() for t in self._threads):
            self.traffic.unexpected.append("an agent thread did not finish in time")
        return self.traffic

    def _next_key(self) -> str | None:
        with self._issue_lock:
            if self.stop_event.is_set() or self._issued >= self.max_keys:
                return None
            self._issued += 1
            return f"agent-{uuid.uuid4()}"

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            while (key := self._next_key()) is not None:
                accepted = self._propose(client, key, proposal_body(rng, callback_url=self.callback_url))
                if accepted and self.report_results and accepted.decision == "execute":
                    self._report(client, accepted)

    def _send(self, client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self.traffic.see(f"conn:{type(exc).__name__}")
            return None
        self.traffic.see(response.status_code, time.monotonic() - started)
        return response

    def _retryable(self, response: httpx.Response | None) -> bool:
        if response is None or response.status_code == 503:
            return True
        if response.status_code == 409:
            try:
                return response.json().get("error") == "idempotency_key_in_flight"
            except ValueError:
                return False
        return False

    def _propose(self, client: httpx.Client, key: str, body: dict) -> Accepted | None:
        first = time.monotonic()
        attempts = 0
        while time.monotonic() < self.deadline:
            attempts += 1
            response = self._send(client, "POST", "/api/v1/actions", json=body, headers={"Idempotency-Key": key})
            if response is not None and response.status_code == 201:
                data = response.json()
                accepted = Accepted(
                    key=key,
                    action_id=data["id"],
                    decision=data["decision"],
                    payload_sha256=data["payload_sha256"],
                    attempts=attempts,
                    latency=time.monotonic() - first,
                )
                with self.traffic.lock:
                    self.traffic.accepted[key] = accepted
                return accepted
            if not self._retryable(response):
                self.traffic.unexpected.append(f"POST {key}: {response.status_code} {response.text[:300]}")
                return None
            time.sleep(RETRY_SLEEP)
        with self.traffic.lock:
            self.traffic.abandoned.append(key)
        return None

    def _report(self, client: httpx.Client, accepted: Accepted) -> None:
        # Claim the execution (issue 15), then report it, both with one claim key: a retry of
        # either after a lost answer is answered again.
        claim_key = f"traffic-{accepted.action_id}"
        body = {"status": "executed", "payload_sha256": accepted.payload_sha256, "claim_key": claim_key}
        claimed = False
        while time.monotonic() < self.deadline:
            if not claimed:
                url, sent = f"/api/v1/actions/{accepted.action_id}/claim", {"claim_key": claim_key}
            else:
                url, sent = f"/api/v1/actions/{accepted.action_id}/result", body
            response = self._send(client, "POST", url, json=sent)
            if response is not None and response.status_code == 200 and not claimed:
                claimed = True
                continue
            if response is not None and response.status_code == 200:
                accepted.executed = True
                return
            if response is not None and response.status_code != 503:
                self.traffic.unexpected.append(
                    f"result {accepted.action_id}: {response.status_code} {response.text[:300]}"
                )
                return
            time.sleep(RETRY_SLEEP)
        with self.traffic.lock:
            self.traffic.abandoned.append(f"result:{accepted.action_id}")


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def progress(agents: Agents, n: int, *, timeout: float = 30.0) -> None:
    """Wait until `n` more proposals have been accepted."""
    target = agents.traffic.n_accepted + n
    wait_until(lambda: agents.traffic.n_accepted >= target, timeout=timeout, what=f"{n} more accepted proposals")


def reconcile(conn: psycopg.Connection, *, deployment_id: int, traffic: Traffic) -> dict:
    """Compare what the agents were told with what the database holds; return the findings.

    Problems are listed under "problems"; an empty list means: every accepted key exists
    exactly once, with the id the agent was given, nothing exists that no agent was given,
    no key is stuck in flight, each proposal was counted and audited once, each reported
    execution recorded once.
    """
    problems: list[str] = []
    rows = conn.execute(
        "SELECT id, idempotency_key, status, route FROM reviews_proposedaction WHERE deployment_id = %s",
        [deployment_id],
    ).fetchall()
    by_key: dict[str, list[int]] = {}
    for action_id, key, _status, _route in rows:
        by_key.setdefault(key, []).append(action_id)
    duplicates = {k: ids for k, ids in by_key.items() if len(ids) > 1}
    if duplicates:
        problems.append(f"keys stored more than once: {list(duplicates.items())[:5]}")
    missing = [k for k in traffic.accepted if k not in by_key]
    if missing:
        problems.append(f"{len(missing)} accepted keys are not in the database, e.g. {missing[:3]}")
    unknown = [k for k in by_key if k not in traffic.accepted]
    if unknown:
        problems.append(f"{len(unknown)} actions exist that no agent was told about, e.g. {unknown[:3]}")
    wrong_id = [k for k, a in traffic.accepted.items() if k in by_key and by_key[k] != [a.action_id]]
    if wrong_id:
        problems.append(f"{len(wrong_id)} keys answered with another id than the one stored")
    in_flight = conn.execute(
        "SELECT count(*) FROM reviews_idempotencyrecord WHERE deployment_id = %s AND in_flight", [deployment_id]
    ).fetchone()[0]
    if in_flight:
        problems.append(f"{in_flight} idempotency keys are stuck in flight")

    metrics = dict(
        conn.execute(
            "SELECT metric, sum(n) FROM deployments_evidencecount WHERE deployment_id = %s GROUP BY metric",
            [deployment_id],
        ).fetchall()
    )
    proposed_counted = sum(n for m, n in metrics.items() if m.startswith("proposed."))
    if proposed_counted != len(rows):
        problems.append(f"evidence counts {proposed_counted} proposals for {len(rows)} actions")
    executed = {a.action_id for a in traffic.accepted.values() if a.executed}
    executed_in_db = {i for i, _k, status, _r in rows if status == "executed"}
    if executed != executed_in_db:
        problems.append(f"executed per agents {len(executed)} != executed in the database {len(executed_in_db)}")
    executed_counted = sum(n for m, n in metrics.items() if m.startswith("execution.executed."))
    if executed_counted != len(executed_in_db):
        problems.append(f"evidence counts {executed_counted} executions for {len(executed_in_db)} executed actions")

    audit = conn.execute(
        "SELECT object_id, verb, count(*) FROM deployments_auditevent WHERE deployment_id = %s "
        "AND verb IN ('reviews.action.proposed', 'reviews.action.auto_approved', 'reviews.action.executed') "
        "GROUP BY object_id, verb",
        [deployment_id],
    ).fetchall()
    twice = [(o, v, n) for o, v, n in audit if n != 1]
    if twice:
        problems.append(f"audited more than once: {twice[:5]}")
    proposed_audited = {int(o) for o, v, _n in audit if v != "reviews.action.executed"}
    if proposed_audited != {r[0] for r in rows}:
        problems.append("not every action has exactly one proposal audit event")
    executed_audited = {int(o) for o, v, _n in audit if v == "reviews.action.executed"}
    if executed_audited != executed_in_db:
        problems.append("not every executed action has exactly one execution audit event")
    return {"actions": len(rows), "executed": len(executed_in_db), "problems": problems}
