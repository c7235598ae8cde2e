"""API key scopes (issue 16 item 5): what a key may do on the agent API.

`propose`: propose actions, read them, report execution results, read its deployment.
`outcomes`: report what humans did (POST /outcomes, shadow mode).

Outcomes are evidence of the AI's quality, so they must come from the system of record,
not from the agent whose proposals they judge: a key has the scopes it was made with, for
good. To let one integration do both, make a key with both scopes (`create_api_key SLUG
--scope propose --scope outcomes`) and revoke the old one; the shadow report warns while
any active key holds both. Scopes never change on a key row, so the process's key cache
(deployments.services) can never serve a stale scope.
"""

import enum
from collections.abc import Iterable


class Scope(enum.StrEnum):
    PROPOSE = "propose"
    OUTCOMES = "outcomes"


ALL = tuple(s.value for s in Scope)
# Keys made before scopes existed, and keys made without --scope, may only propose.
DEFAULT = (Scope.PROPOSE.value,)


def default_scopes() -> list[str]:
    """The field default (a callable: a list default would be shared)."""
    return list(DEFAULT)


def scopes_clean(scopes: Iterable[str]) -> list[str]:
    """`scopes` validated, deduplicated and in canonical order; ValueError names an unknown one."""
    wanted = set()
    for scope in scopes:
        if scope not in ALL:
            raise ValueError(f"unknown scope {scope!r}; known: {', '.join(ALL)}")
        wanted.add(scope)
    if not wanted:
        raise ValueError("a key needs at least one scope")
    return [s for s in ALL if s in wanted]


def holds_both(scopes: Iterable[str]) -> bool:
    """True when one key may both propose and report the outcomes that judge its proposals."""
    return set(ALL) <= set(scopes)
