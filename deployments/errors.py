"""Domain errors. Views turn them into 4xx JSON (API) or a message (browser)."""


class DomainError(Exception):
    """Base of every error a service raises on purpose. `code` is the API's `error` field."""

    code = "domain_error"
    http_status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidTransition(DomainError):
    """The action (or deployment) is not in a state that allows this move."""

    code = "invalid_transition"


class Conflict(DomainError):
    code = "conflict"


class NotAllowed(DomainError):
    """The actor may not do this (four-eyes, role)."""

    code = "forbidden"
    http_status = 403


class InvalidInput(DomainError):
    code = "invalid"
    http_status = 422


class RefusedByRule(DomainError):
    """A payload rule with effect `refuse` matched the proposal (deployments.rules)."""

    code = "refused_by_rule"
    http_status = 422


class ApiKeyChanged(Exception):  # noqa: N818 -- an outcome its caller handles, not an error for the user
    """A write refused an API key taken from the process's cache: since it was read, the key
    was revoked or its deployment changed. The caller reads the key afresh and tries again
    (deployments.services.api_key_confirm); never shown to an agent as such."""
