"""The HTTP client of the Trustladder agent API (`/api/v1/`)."""

from __future__ import annotations

import functools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from trustladder_client.canonical import payload_sha256
from trustladder_client.errors import (
    ActionExpired,
    ActionRejected,
    ActionShadowed,
    ApiError,
    DecisionTimeout,
    TrustladderError,
)

T = TypeVar("T")
RETRY_STATUSES = {502, 503, 504}


@dataclass(frozen=True)
class Action:
    """An action as the server represents it (the same JSON in answers and webhooks)."""

    data: dict[str, Any]

    @property
    def id(self) -> int:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def decision(self) -> str:
        """execute, wait, shadow, reject or expired."""
        return self.data["decision"]

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
                    return response.json()
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
    ) -> Action:
        """Propose an action; the answer's `decision` says what to do now (execute, wait, shadow).

        With an `idempotency_key`, a retry (here or by you) never creates a second action: the
        server replays the first answer.
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
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return Action(self._request("POST", "/actions", json=body, headers=headers, retry=bool(idempotency_key)))

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

    def report_result(self, action_id: int, *, status: str, payload_sha256: str, error: str = "") -> Action:
        """Report `executed` or `failed` for an approved action, bound to its final payload's hash."""
        if status not in ("executed", "failed"):
            raise ValueError("status must be 'executed' or 'failed'")
        body = {"status": status, "payload_sha256": payload_sha256, "error": error}
        return Action(self._request("POST", f"/actions/{int(action_id)}/result", json=body, retry=True))

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
        """Propose, wait for the decision, and call `function(final_payload)` only on `execute`.

        Reports `executed` (or `failed`, then re-raises) with the final payload's hash. Raises
        `ActionRejected`, `ActionExpired`, `ActionShadowed` or `DecisionTimeout` instead of
        calling `function`.
        """
        propose_kwargs.setdefault("idempotency_key", f"gate-{uuid.uuid4()}")
        action = self.propose(action_type, payload, **propose_kwargs)
        if action.decision == "wait":
            action = self.wait(action.id, timeout)
        _raise_unless_execute(action)
        final = action.final_payload
        if final is None or action.payload_sha256 != payload_sha256(final):
            raise TrustladderError(f"action {action.id}: the final payload does not match its payload_sha256")
        try:
            result = function(final)
        except Exception as exc:
            try:
                self.report_result(action.id, status="failed", payload_sha256=action.payload_sha256, error=repr(exc))
            except TrustladderError as report_error:
                exc.add_note(f"Reporting the failure to Trustladder failed too: {report_error}")
            raise
        self.report_result(action.id, status="executed", payload_sha256=action.payload_sha256)
        return result

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
