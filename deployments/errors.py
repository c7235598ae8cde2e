"""Domain errors. Views turn them into 4xx JSON (API) or a message (browser)."""


class DomainError(Exception):
    """Base of every error a service raises on purpose. `code` is the API's `error` field and
    `http_status` its status, both declared in the class line of each kind:
    `class Conflict(DomainError, code="conflict")`."""

    code = "domain_error"
    http_status = 409

    def __init_subclass__(cls, *, code: str = "", http_status: int = 0, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = code or cls.code
        cls.http_status = http_status or cls.http_status

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidTransition(DomainError, code="invalid_transition"):
    """The action (or deployment) is not in a state that allows this move."""


class Conflict(DomainError, code="conflict"):
    """Someone or something else got there first (a claim, a concurrent change)."""


class NotAllowed(DomainError, code="forbidden", http_status=403):
    """The actor may not do this (four-eyes, role)."""


class InvalidInput(DomainError, code="invalid", http_status=422):
    """What was sent cannot be used: the message says why."""


class RefusedByRule(DomainError, code="refused_by_rule", http_status=422):
    """A payload rule with effect `refuse` matched the proposal (deployments.rules)."""


class ApiKeyChanged(Exception):  # noqa: N818 -- an outcome its caller handles, not an error for the user
    """A write refused an API key taken from the process's cache: since it was read, the key
    was revoked or its deployment changed. The caller reads the key afresh and tries again
    (deployments.services.api_key_confirm); never shown to an agent as such."""
