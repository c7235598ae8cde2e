"""Exceptions raised by the client. Every one is a `TrustladderError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustladder_client.client import Action


__all__ = [  # every error the client raises; the package exports them all
    "ActionAlreadyClaimed",
    "ActionCancelled",
    "ActionExpired",
    "ActionNotExecuted",
    "ActionRejected",
    "ActionShadowed",
    "ApiError",
    "DecisionTimeout",
    "OutcomeUnknown",
    "TrustladderError",
    "WebhookVerificationError",
]


class TrustladderError(Exception):
    """Base class of every error this package raises."""


class ApiError(TrustladderError):
    """The server answered with an error: `status_code`, `code` (e.g. "conflict") and `detail`."""

    def __init__(self, status_code: int, code: str, detail: Any) -> None:
        super().__init__(f"HTTP {status_code} {code}: {detail}")
        self.status_code = status_code
        self.code = code
        self.detail = detail


class ActionNotExecuted(TrustladderError):  # noqa: N818 -- reads as what happened
    """The action may not be executed; `action` is the server's representation of it."""

    def __init__(self, message: str, action: Action) -> None:
        super().__init__(message)
        self.action = action


class ActionRejected(ActionNotExecuted):  # noqa: N818
    """A person rejected the action (`action.reason` says why)."""


class ActionExpired(ActionNotExecuted):  # noqa: N818
    """Nobody decided before the deployment's SLA ran out."""


class ActionShadowed(ActionNotExecuted):  # noqa: N818
    """The deployment (or this action type) is in shadow mode: logged for comparison, never executed."""


class DecisionTimeout(ActionNotExecuted):  # noqa: N818
    """`wait()` gave up before a decision. `Client.run` (and the gate) then cancel the action,
    and its deadline (the wait's timeout) expires it anyway: a late approval never makes it
    executable."""


class ActionCancelled(ActionNotExecuted):  # noqa: N818
    """The agent cancelled the action before its execution was claimed."""


class ActionAlreadyClaimed(ActionNotExecuted):  # noqa: N818
    """Its execution was claimed already (a replay, a retry after a crash, a second process):
    it must not run again. `action.decision` says where it is: claimed, done or reconcile."""


class OutcomeUnknown(TrustladderError):  # noqa: N818
    """Raise it from a gated function that cannot tell whether its effect happened (a timeout
    talking to the payment provider, say): the gate reports `unknown`, and the action is never
    offered for execution again until it is reconciled (`Client.reconcile`)."""


class WebhookVerificationError(TrustladderError):
    """A webhook's signature, timestamp or headers did not verify. Answer it with 400 and ignore it."""
