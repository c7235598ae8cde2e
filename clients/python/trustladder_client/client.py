"""The HTTP client of the Trustladder agent API (`/api/v1/`)."""

from __future__ import annotations

import contextlib
import functools
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx

from trustladder_client.canonical import payload_sha256
from trustladder_client.errors import (
    ActionAlreadyClaimed,
    ActionCancelled,
    ActionExpired,
    ActionRejected,
    ActionShadowed,
    ApiError,
    DecisionTimeout,
    OutcomeUnknown,
    TrustladderError,
)

T = TypeVar("T")
RETRY_STATUSES = {502, 503, 504}


@dataclass(frozen=True)
class Action:
    """An action as the server represents it (the same JSON in answers and webhooks)."""

    data: dict[str, Any]
    # True when the server replayed a stored answer (Idempotent-Replayed: true); `propose()`
    # then reads the action's current state, so `data` is never the stale replay.
    replayed: bool = False

    @property
    def id(self) -> int:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def decision(self) -> str:
        """execute, wait, shadow, reject, expired, cancelled, claimed, reconcile or done."""
        return self.data["decision"]

    @property
    def claim_key(self) -> str | None:
        """The execution claim's key, in the answer to `claim()` only."""
        return self.data.get("claim_key")

    @property
    def final_payload(self) -> dict[str, Any] | None:
        """The payload to execute: the proposal, or what a reviewer edited it into."""
        return self.data.get("final_payload")

    @property
    def payload_sha256(self) -> str | None:
        return self.data.get("payload_sha256")

    @property
    def reason(self) -> str | None:
        return self.data.get("reason")

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


class Client:
    """`Client("https://trustladder.example", "tl_...")`. Thread-safe; reuse one per process.

    Requests that are safe to repeat (reads, result reports, and proposals sent with an
    Idempotency-Key) are retried on connection errors and 502/503/504, with backoff.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        self.retries = retries
        self._http = httpx.Client(
            base_url=base,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "trustladder-client/0.1"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, json: Any = None, headers: dict | None = None, retry: bool) -> Any:
        return self._send(method, path, json=json, headers=headers, retry=retry).json()

    def _send(
        self, method: str, path: str, *, json: Any = None, headers: dict | None = None, retry: bool
    ) -> httpx.Response:
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                if last:
                    raise TrustladderError(f"{method} {path}: {exc}") from exc
            else:
                in_flight = response.status_code == 409 and _error_code(response) == "idempotency_key_in_flight"
                if response.status_code in RETRY_STATUSES or in_flight:
                    if last:
                        _raise_for(response)
                else:
                    if response.status_code >= 400:
                        _raise_for(response)
                    return response
            time.sleep(min(0.25 * 2**attempt, 5.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- API -----------------------------------------------------------------------------

    def propose(
        self,
        action_type: str,
        payload: dict[str, Any],
        *,
        risk_score: float,
        confidence: float,
        external_id: str | None = None,
        model_version: str | None = None,
        rationale: str | None = None,
        needs_human: bool = False,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        run_id: str | None = None,
        run_hold: bool = False,
        parent_id: int | None = None,
        expires_in: float | None = None,
        expires_at: datetime | None = None,
    ) -> Action:
        """Propose an action; the answer's `decision` says what to do now (execute, wait, shadow).

        With an `idempotency_key`, a retry (here or by you) never creates a second action: the
        server replays the first answer, and this method then reads the action's *current*
        state (`Action.replayed` is True), so it never acts on a stale `execute`.
        `expires_in` (seconds, rounded up) or `expires_at` (aware datetime) set a deadline of at
        most the SLA; `run_id`, `run_hold` and `parent_id` group and order actions (README).
        """
        body: dict[str, Any] = {
            "action_type": action_type,
            "payload": payload,
            "risk_score": risk_score,
            "confidence": confidence,
            "needs_human": needs_human,
        }
        optional = {
            "external_id": external_id,
            "model_version": model_version,
            "rationale": rationale,
            "callback_url": callback_url,
            "run_id": run_id,
            "parent_id": parent_id,
            "expires_in": math.ceil(expires_in) if expires_in is not None else None,
            "expires_at": expires_at.isoformat() if expires_at is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if run_hold:
            body["run_hold"] = True
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._send("POST", "/actions", json=body, headers=headers, retry=bool(idempotency_key))
        if response.headers.get("Idempotent-Replayed") == "true":
            # The stored answer is the first one, as the IETF draft wants: what is true now
            # (approved, claimed, done...) is the action's current state.
            return Action(self.get(response.json()["id"]).data, replayed=True)
        return Action(response.json())

    def propose_batch(
        self,
        proposals: list[dict[str, Any]],
        *,
        run_id: str | None = None,
        run_hold: bool = False,
        idempotency_key: str | None = None,
    ) -> list[Action]:
        """Propose up to 100 actions of one run in one request, all stored or none. Each
        proposal is a dict of `propose()`'s fields (`action_type`, `payload`, `risk_score`,
        `confidence`, optional `external_id`, `parent_id`, `expires_in`, ...)."""
        body: dict[str, Any] = {"actions": proposals, "run_hold": run_hold}
        if run_id is not None:
            body["run_id"] = run_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._send("POST", "/actions/batch", json=body, headers=headers, retry=bool(idempotency_key))
        actions = response.json()["actions"]
        if response.headers.get("Idempotent-Replayed") == "true":
            return [Action(self.get(a["id"]).data, replayed=True) for a in actions]
        return [Action(a) for a in actions]

    def report_outcomes(self, outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Shadow mode: what the humans actually did (up to 1000 outcomes, each with
        `external_id`, `action_type`, `payload`). Idempotent per external_id."""
        return self._request("POST", "/outcomes", json=outcomes, retry=True)

    def get(self, action_id: int) -> Action:
        """The action now: status, decision, final_payload, payload_sha256, reason."""
        return Action(self._request("GET", f"/actions/{int(action_id)}", retry=True))

    def wait(
        self,
        action_id: int,
        timeout: float | None = 3600.0,
        *,
        initial_interval: float = 0.5,
        max_interval: float = 15.0,
    ) -> Action:
        """Poll until the decision is no longer `wait`, backing off (with jitter) from
        `initial_interval` to `max_interval` seconds. Returns the action (decision execute,
        reject, expired or shadow); raises `DecisionTimeout` after `timeout` seconds (None: never).
        A server that is briefly unreachable (or answers 5xx) does not end the wait; a 4xx does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = initial_interval
        action: Action | None = None
        while True:
            try:
                action = self.get(action_id)
            except ApiError as exc:
                if exc.status_code < 500:
                    raise
            except TrustladderError:
                pass  # the server is unreachable for now: keep polling until the deadline
            else:
                if action.decision != "wait":
                    return action
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if action is None:
                        action = self.get(action_id)  # raises the outage's error if it lasts
                    raise DecisionTimeout(f"no decision on action {action_id} within {timeout} s", action)
                time.sleep(min(interval * random.uniform(0.8, 1.0), remaining))
            else:
                time.sleep(interval * random.uniform(0.8, 1.0))
            interval = min(interval * 1.6, max_interval)

    wait_for_decision = wait

    def claim(self, action_id: int, *, payload_sha256: str | None = None) -> Action:
        """Claim the execution of an approved action: granted once per approval. Run it only
        after this returns; the answer's `claim_key` goes with the result. Raises
        `ActionAlreadyClaimed` (someone claimed it: do not run it), `ActionExpired`,
        `ActionCancelled`, or `ApiError`. Retried safely: the retry carries the same key."""
        body: dict[str, Any] = {"claim_key": f"claim-{uuid.uuid4()}"}
        if payload_sha256:
            body["payload_sha256"] = payload_sha256
        try:
            return Action(self._request("POST", f"/actions/{int(action_id)}/claim", json=body, retry=True))
        except ApiError as exc:
            refusal = {"already_claimed": ActionAlreadyClaimed, "expired": ActionExpired, "cancelled": ActionCancelled}
            if exc.status_code == 409 and exc.code in refusal:
                raise refusal[exc.code](f"action {action_id}: {exc.detail}", self.get(action_id)) from exc
            raise

    def report_result(
        self, action_id: int, *, status: str, payload_sha256: str, error: str = "", claim_key: str | None = None
    ) -> Action:
        """Report `executed`, `failed` or `unknown` for a claimed execution, bound to its final
        payload's hash. With the claim's `claim_key` a retry of this report is safe; any second
        result is refused by the server (`ApiError` 409 `already_reported`)."""
        if status not in ("executed", "failed", "unknown"):
            raise ValueError("status must be 'executed', 'failed' or 'unknown'")
        body = {"status": status, "payload_sha256": payload_sha256, "error": error}
        if claim_key:
            body["claim_key"] = claim_key
        return Action(self._request("POST", f"/actions/{int(action_id)}/result", json=body, retry=bool(claim_key)))

    def reconcile(self, action_id: int, *, committed: bool, reason: str = "") -> Action:
        """Settle an `unknown` result: committed (it happened) or not (claimable once more)."""
        body = {"committed": committed, "reason": reason}
        return Action(self._request("POST", f"/actions/{int(action_id)}/reconcile", json=body, retry=False))

    def cancel(self, action_id: int, *, reason: str = "") -> Action:
        """Withdraw a pending or approved action not yet claimed. Safe to repeat."""
        return Action(self._request("POST", f"/actions/{int(action_id)}/cancel", json={"reason": reason}, retry=True))

    # -- the gate ------------------------------------------------------------------------

    def run(
        self,
        function: Callable[[dict[str, Any]], T],
        action_type: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = 3600.0,
        **propose_kwargs: Any,
    ) -> T:
        """Propose, wait for the decision, claim the execution, and only then call
        `function(final_payload)`: at most once per approval, whatever happens around it.

        The wait's `timeout` is also the proposal's deadline (`expires_in`, unless given):
        past it the server expires the action, and on `DecisionTimeout` this cancels it, so a
        late approval never makes a timed-out call executable. A replayed proposal is read
        as it is now. Reports `executed`, `failed` (then re-raises) or, when `function`
        raises `OutcomeUnknown`, `unknown`, with the final payload's hash and the claim's
        key. Raises `ActionRejected`, `ActionExpired`, `ActionShadowed`, `ActionCancelled`,
        `ActionAlreadyClaimed` or `DecisionTimeout` instead of calling `function`.
        """
        propose_kwargs.setdefault("idempotency_key", f"gate-{uuid.uuid4()}")
        if timeout is not None and "expires_at" not in propose_kwargs:
            propose_kwargs.setdefault("expires_in", timeout)
        action = self.propose(action_type, payload, **propose_kwargs)
        if action.decision == "wait":
            try:
                action = self.wait(action.id, timeout)
            except DecisionTimeout:
                self._cancel_quietly(action.id)
                raise
        _raise_unless_execute(action)
        final = action.final_payload
        if final is None or action.payload_sha256 != payload_sha256(final):
            raise TrustladderError(f"action {action.id}: the final payload does not match its payload_sha256")
        claim = self.claim(action.id, payload_sha256=action.payload_sha256)  # refused: never runs
        report = functools.partial(
            self.report_result, action.id, payload_sha256=action.payload_sha256, claim_key=claim.claim_key
        )
        try:
            result = function(final)
        except Exception as exc:
            status = "unknown" if isinstance(exc, OutcomeUnknown) else "failed"
            try:
                report(status=status, error=repr(exc))
            except TrustladderError as report_error:
                exc.add_note(f"Reporting the {status} result to Trustladder failed too: {report_error}")
            raise
        report(status="executed")
        return result

    def _cancel_quietly(self, action_id: int) -> None:
        """Best effort after a timeout: the deadline expires the action anyway."""
        with contextlib.suppress(TrustladderError):
            self.cancel(action_id, reason="the agent stopped waiting")

    def gate(
        self, action_type: str, *, timeout: float | None = 3600.0, **defaults: Any
    ) -> Callable[[Callable[[dict[str, Any]], T]], Callable[..., T]]:
        """Decorator: the function runs only once Trustladder says `execute`, with the final payload.

            @client.gate("refund.issue")
            def refund(payload): ...

            refund({"order": "A-1", "amount_cents": 1200}, risk_score=0.2, confidence=0.97)

        Keyword arguments of the call (or `defaults` given here) go to `propose()`.
        """

        def decorator(function: Callable[[dict[str, Any]], T]) -> Callable[..., T]:
            @functools.wraps(function)
            def gated(payload: dict[str, Any], **propose_kwargs: Any) -> T:
                return self.run(function, action_type, payload, timeout=timeout, **{**defaults, **propose_kwargs})

            return gated

        return decorator


def _raise_unless_execute(action: Action) -> None:
    decision = action.decision
    if decision == "execute":
        return
    if decision == "reject":
        raise ActionRejected(f"action {action.id} was rejected: {action.reason or 'no reason given'}", action)
    if decision == "expired":
        raise ActionExpired(f"action {action.id} expired without a decision", action)
    if decision == "shadow":
        raise ActionShadowed(f"action {action.id} was logged in shadow mode and must not be executed", action)
    if decision == "cancelled":
        raise ActionCancelled(f"action {action.id} was cancelled", action)
    if decision in ("claimed", "done", "reconcile"):
        raise ActionAlreadyClaimed(f"action {action.id}: its execution was already claimed ({action.status})", action)
    raise TrustladderError(f"action {action.id}: unexpected decision {decision!r}")


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""


def _raise_for(response: httpx.Response) -> None:
    try:
        body = response.json()
        code, detail = body.get("error", "error"), body.get("detail", body)
    except ValueError:
        code, detail = "error", response.text[:500]
    raise ApiError(response.status_code, str(code), detail)
