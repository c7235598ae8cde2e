"""Payload rules (issue 16 item 3): per action type, CEL expressions over the proposal that can
only raise its route (`review`, `senior`) or refuse it (422 to the agent, naming the rule).

Stored on the deployment (`Deployment.payload_rules`):

    {"refund.issue": [{"name": "big refunds", "expression": "payload.amount_cents >= 50000",
                       "effect": "senior"}]}

An expression sees `payload` and the proposal's fields (FIELDS) and must be true or false.
The route is the strictest of the policy's route and every matching rule's effect
(`stricter`): a rule never lowers oversight. A rule that cannot be evaluated on a proposal
(a missing field, a wrong type) counts as matching — failing closed; write
`has(payload.x) && ...` to make a field optional. In stage 1 (shadow) only `refuse` applies:
shadow actions are never executed, so there is no route to raise.

CEL implementation: `common-expression-language` (Python bindings of the Rust `cel`
crate), not `cel-python` (pure Python): on this machine one evaluation took ~50 µs against
~1.9 ms, and a proposal's budget is a few hundred µs. The rules of one type are compiled once
per process into ONE program that returns the list of their results, so the proposal is
converted into CEL values once whatever the number of rules (bench/rules.py).

A rule may also ask for a quorum: `"approvals_required": 2` (2–5) on a `review` or `senior`
rule means that an action it matches needs that many different people to approve it
(reviews/quorum.py); the highest of the matching rules' counts is recorded on the action at
ingest. Adding a quorum, or raising one, raises oversight; lowering or removing one lowers it
(`rules_change_raises_only`).

Rules live on the deployment's row, so the agent API's key cache (which verifies the row's
version in the ingest statement) can never route with rules older than the row's.
"""

import enum
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cel

from deployments.policy import OVERSIGHT, Route


class Effect(enum.StrEnum):
    REVIEW = "review"
    SENIOR = "senior"
    REFUSE = "refuse"


# What an expression may name: the proposal as the agent sent it.
FIELDS = (
    "payload",
    "action_type",
    "risk_score",
    "confidence",
    "needs_human",
    "external_id",
    "model_version",
    "rationale",
)
# CEL's standard functions (operators are named like `_<_`, `!_`, `@in`); `exists`, `all`,
# `map`, `filter` and `has` are macros and never listed. A name outside this set is a typo.
KNOWN_FUNCTIONS = frozenset(
    [
        "size",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "dyn",
        "type",
        "timestamp",
        "duration",
        "max",
        "min",
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    ]
)
MAX_RULES_PER_TYPE = 50
MAX_EXPRESSION = 2000
MAX_NAME = 100
MAX_APPROVALS = 5
RULE_KEYS = frozenset({"name", "expression", "effect"})
OPTIONAL_KEYS = frozenset({"approvals_required"})
_MACRO_VARIABLE = re.compile(r"\.\s*(?:exists_one|exists|all|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
ACTION_TYPE = re.compile(r"^[A-Za-z0-9_.:\-/]{1,100}$")
_EFFECT_ROUTE = {Effect.REVIEW: Route.REVIEW, Effect.SENIOR: Route.SENIOR}
_STRICTNESS = {Effect.REVIEW: 1, Effect.SENIOR: 2, Effect.REFUSE: 3}
# A sample proposal that rules are tried on when saved: a name CEL does not know (a typo'd
# function) shows there; a missing payload field is expected and fine.
_SAMPLE = {
    "payload": {},
    "action_type": "sample",
    "risk_score": 0.5,
    "confidence": 0.5,
    "needs_human": False,
    "external_id": "",
    "model_version": "",
    "rationale": "",
}


@dataclass(frozen=True)
class Rule:
    name: str
    expression: str
    effect: Effect
    approvals_required: int = 1


@dataclass(frozen=True)
class Match:
    """A rule that matched one proposal; `error` says why it counted as matching if it could
    not be evaluated."""

    name: str
    effect: Effect
    error: str = ""
    approvals_required: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "effect": self.effect.value,
            **({"approvals_required": self.approvals_required} if self.approvals_required > 1 else {}),
            **({"error": self.error} if self.error else {}),
        }


def stricter(route: Route, effect: Effect) -> Route:
    """The stricter of `route` and a matching rule's effect (never lower). SHADOW stays
    SHADOW; `refuse` is not a route (the caller refuses)."""
    if route is Route.SHADOW or effect is Effect.REFUSE:
        return route
    candidate = _EFFECT_ROUTE[effect]
    return candidate if OVERSIGHT[candidate] > OVERSIGHT[route] else route


def payload_rules_errors(value: Any) -> list[str]:
    """Everything wrong with a `payload_rules` document (empty when it is valid): its shape,
    names (unique per type), effects, and each expression's syntax, the fields it names and
    the functions it calls."""
    if not isinstance(value, Mapping):
        return ["payload rules must be an object of action type → list of rules"]
    errors = []
    for action_type, rules in value.items():
        if not isinstance(action_type, str) or not ACTION_TYPE.match(action_type):
            errors.append(f"{action_type!r}: not an action type")
            continue
        if not isinstance(rules, list):
            errors.append(f"{action_type}: rules must be a list")
            continue
        if len(rules) > MAX_RULES_PER_TYPE:
            errors.append(f"{action_type}: at most {MAX_RULES_PER_TYPE} rules per action type")
        names = set()
        for i, rule in enumerate(rules):
            where = f"{action_type}[{i}]"
            if not isinstance(rule, Mapping) or not RULE_KEYS <= set(rule) <= RULE_KEYS | OPTIONAL_KEYS:
                errors.append(
                    f"{where}: a rule is an object with exactly name, expression and effect "
                    "(and optionally approvals_required)"
                )
                continue
            name, expression, effect = rule["name"], rule["expression"], rule["effect"]
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
                errors.append(f"{where}: name must be 1–{MAX_NAME} characters")
            elif name in names:
                errors.append(f"{where}: the name {name!r} is used twice")
            else:
                names.add(name)
                where = f"{action_type} rule {name!r}"
            if effect not in {e.value for e in Effect}:
                errors.append(f"{where}: effect must be review, senior or refuse")
            if "approvals_required" in rule and (error := _approvals_error(rule["approvals_required"], effect)):
                errors.append(f"{where}: {error}")
            if not isinstance(expression, str) or not expression.strip() or len(expression) > MAX_EXPRESSION:
                errors.append(f"{where}: expression must be 1–{MAX_EXPRESSION} characters")
                continue
            if error := expression_error(expression):
                errors.append(f"{where}: {error}")
    return errors


def _approvals_error(value: Any, effect: Any) -> str:
    """Why `value` cannot be a rule's approvals_required ('' if it can)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= MAX_APPROVALS:
        return f"approvals_required must be a whole number from 2 to {MAX_APPROVALS}"
    if effect == Effect.REFUSE:
        return "approvals_required needs effect review or senior (a refused proposal is never approved)"
    return ""


def approvals_of(rule: Mapping[str, Any]) -> int:
    """How many approvals a (validated) rule asks for: 1 unless it sets approvals_required."""
    return int(rule.get("approvals_required", 1))


def expression_error(expression: str) -> str:
    """Why `expression` cannot be a rule ('' if it can)."""
    if "\x00" in expression:
        return "the expression contains NUL"
    try:
        program = cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        return f"syntax: {_first_line(exc)}"
    # A macro's iteration variable (`items.exists(i, i.sku == "x")`) is listed as a variable too.
    bound = set(_MACRO_VARIABLE.findall(expression))
    unknown = sorted(set(program.variables()) - set(FIELDS) - bound)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; an expression may use {', '.join(FIELDS)}"
    functions = sorted(f for f in program.functions() if f[:1] not in "_!-@" and f not in KNOWN_FUNCTIONS)
    if functions:
        return f"unknown function(s) {', '.join(functions)}"
    try:
        result = program.execute(_SAMPLE)
    except RuntimeError as exc:
        if "Undefined" in str(exc):
            return _first_line(exc)
        return ""
    except (KeyError, TypeError, ValueError, OverflowError, ZeroDivisionError):
        return ""  # depends on the payload: a missing field on the empty sample is expected
    if not isinstance(result, bool):
        return f"must be true or false, not {type(result).__name__} (e.g. compare with >=, ==)"
    return ""


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def rules_for(document: Mapping[str, Any] | None, action_type: str) -> tuple[Rule, ...]:
    """The rules of `action_type` in a (validated) payload_rules document."""
    rules = (document or {}).get(action_type) or ()
    return tuple(
        Rule(name=r["name"], expression=r["expression"], effect=Effect(r["effect"]), approvals_required=approvals_of(r))
        for r in rules
    )


@dataclass(frozen=True)
class _Compiled:
    combined: Any  # one CEL program: the list of every rule's result
    each: tuple[Any, ...]
    names: frozenset[str]  # the proposal's fields the rules name: only those are converted


@functools.lru_cache(maxsize=1024)
def _compiled(rules: tuple[Rule, ...]) -> _Compiled:
    each = tuple(cel.compile(r.expression) for r in rules)
    combined = cel.compile("[" + ", ".join(f"({r.expression})" for r in rules) + "]")
    names = frozenset(name for program in each for name in program.variables() if name in FIELDS)
    return _Compiled(combined=combined, each=each, names=names)


def rules_match(rules: Sequence[Rule], proposal: Mapping[str, Any]) -> list[Match]:
    """The rules that match `proposal` (a dict with FIELDS), in their order. One CEL call for
    all of them; only if that fails (some rule errs on this proposal) each is evaluated alone,
    and one that errs counts as matching (fail closed)."""
    if not rules:
        return []
    rules = tuple(rules)
    compiled = _compiled(rules)
    context = {name: proposal[name] for name in compiled.names}
    try:
        results = compiled.combined.execute(context)
    except Exception:  # noqa: BLE001 -- any failure of one rule: find which, below
        results = None
    if isinstance(results, list) and len(results) == len(rules) and all(isinstance(r, bool) for r in results):
        return [_match(rule) for rule, hit in zip(rules, results, strict=True) if hit]
    matches = []
    for rule, program in zip(rules, compiled.each, strict=True):
        try:
            result = program.execute(context)
        except Exception as exc:  # noqa: BLE001 -- a rule that cannot be evaluated fails closed
            matches.append(_match(rule, error=_first_line(exc)))
            continue
        if result is True:
            matches.append(_match(rule))
        elif not isinstance(result, bool):
            matches.append(_match(rule, error=f"not true or false: {result!r}"[:300]))
    return matches


def _match(rule: Rule, error: str = "") -> Match:
    return Match(name=rule.name, effect=rule.effect, error=error, approvals_required=rule.approvals_required)


def approvals_required(route: Route, matches: Sequence[Match]) -> int:
    """How many different people must approve a proposal routed to `route`: the highest
    approvals_required of the matching rules when a person decides it (review, senior), else 1."""
    if route not in (Route.REVIEW, Route.SENIOR):
        return 1
    return max((m.approvals_required for m in matches), default=1)


def strictest_refusal(matches: Sequence[Match]) -> Match | None:
    """The first matching `refuse` rule, if any."""
    return next((m for m in matches if m.effect is Effect.REFUSE), None)


def route_with_rules(route: Route, matches: Sequence[Match]) -> Route:
    """`route` raised by every matching rule (never lowered)."""
    for match in matches:
        route = stricter(route, match.effect)
    return route


def rules_change_raises_only(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    """True when going from `before` to `after` can only raise oversight: every rule of
    before is still there, unchanged or with a stricter effect (review < senior < refuse)
    on the same expression; new rules are fine. Anything else (a rule removed, its
    expression or name changed, its effect softened, its approvals_required lowered or
    removed) may lower oversight."""
    after_rules = {(t, r["name"]): r for t, rules in (after or {}).items() for r in rules}
    for action_type, rules in (before or {}).items():
        for rule in rules:
            new = after_rules.get((action_type, rule["name"]))
            if new is None or new["expression"] != rule["expression"]:
                return False
            if _STRICTNESS[Effect(new["effect"])] < _STRICTNESS[Effect(rule["effect"])]:
                return False
            if approvals_of(new) < approvals_of(rule) and new["effect"] != Effect.REFUSE:
                return False  # a quorum lowered (refusing outright is stricter than any quorum)
    return True


def route_why(
    *,
    deployment_stage: str,
    stage: str,
    thresholds: Any,
    risk: float,
    confidence: float,
    needs_human: bool,
    paused: bool,
    breaker_reason: str | None,
    matches: Sequence[Match] = (),
    limited: str = "",
) -> list[dict[str, str]]:
    """Why a proposal went where it went, in words, as the action page shows it: each fact
    that decided its route (threshold, cap, pause, breaker, rule, blast radius), in the order
    the policy applies them. Pure; `thresholds` is a policy.Thresholds."""
    why: list[dict[str, str]] = []
    if stage != deployment_stage:
        why.append(
            {"kind": "cap", "text": f"this action type is capped at stage {stage} (deployment: {deployment_stage})"}
        )
    if stage == "shadow":
        why.append({"kind": "stage", "text": "stage 1 (shadow): logged and compared, never executed"})
    elif risk >= thresholds.review_max_risk:
        why.append(
            {"kind": "threshold", "text": f"risk {risk:g} ≥ review_max_risk {thresholds.review_max_risk:g}: senior"}
        )
    elif needs_human:
        why.append({"kind": "needs_human", "text": "the agent asked for a human: senior"})
    elif stage == "approval":
        why.append({"kind": "stage", "text": "stage 2 (approval): every action is reviewed"})
    elif paused:
        why.append({"kind": "pause", "text": "the kill switch is on: nothing is auto-executed"})
    elif breaker_reason is not None:
        why.append({"kind": "breaker", "text": f"the circuit breaker is tripped ({breaker_reason or 'no reason'})"})
    elif stage == "autonomous":
        why.append({"kind": "stage", "text": "stage 4 (autonomous): auto-executed below the senior threshold"})
    elif risk < thresholds.auto_max_risk and confidence > thresholds.auto_min_confidence:
        why.append(
            {
                "kind": "threshold",
                "text": f"risk {risk:g} < auto_max_risk {thresholds.auto_max_risk:g} and confidence "
                f"{confidence:g} > auto_min_confidence {thresholds.auto_min_confidence:g}: auto",
            }
        )
    else:
        failed = []
        if risk >= thresholds.auto_max_risk:
            failed.append(f"risk {risk:g} ≥ auto_max_risk {thresholds.auto_max_risk:g}")
        if confidence <= thresholds.auto_min_confidence:
            failed.append(f"confidence {confidence:g} ≤ auto_min_confidence {thresholds.auto_min_confidence:g}")
        why.append({"kind": "threshold", "text": " and ".join(failed) + ": review"})
    for match in matches:
        note = f" (could not be evaluated: {match.error}; counted as matching)" if match.error else ""
        quorum = f", {match.approvals_required} approvals required" if match.approvals_required > 1 else ""
        why.append({"kind": "rule", "text": f"payload rule {match.name!r}: {match.effect.value}{quorum}{note}"})
    if limited:
        why.append({"kind": "blast_radius", "text": f"blast radius: {limited}; a person decides"})
    return why
