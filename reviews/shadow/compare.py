"""Compare an AI proposal with the human outcome under a deployment's rules. Pure Python.

Rules (`Deployment.comparison_rules`, every key optional):

| key | value | effect |
|---|---|---|
| `ignore` | list of field paths | those fields (and everything under them) are not compared |
| `numeric_tolerance` | number >= 0 | numbers within this absolute difference are equal |
| `field_tolerances` | {path: number >= 0} | per-field tolerance, overrides `numeric_tolerance` |
| `case_insensitive` | true, or list of paths | strings compared case-insensitively (everywhere, or under those paths) |
| `lists_as_sets` | true, or list of paths | lists compared as sets: order and repeats do not matter |

A path names payload fields with dots (`customer.email`); list positions are left out
(`items.sku` means the `sku` of every item), and a rule on a path covers everything under it.
The action types must be equal for a pair to agree.

The diff is a list of differences, each `{"path", "kind", "ai", "human"}` where kind is
`changed`, `missing_in_ai`, `missing_in_human`, `set` (with `only_ai` / `only_human`) or
`action_type`. `agree` is true exactly when the diff is empty.
"""

import json
import math
from dataclasses import dataclass, field
from typing import Any

from deployments.errors import InvalidInput

RULE_KEYS = {"ignore", "numeric_tolerance", "field_tolerances", "case_insensitive", "lists_as_sets"}
MISSING = object()


def _paths(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise InvalidInput(f"comparison rules: {key} must be a list of field paths")
    return [p.strip() for p in value]


def _tolerance(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"comparison rules: {key} must be a number >= 0")
    return float(value)


def rules_validate(rules: Any) -> dict[str, Any]:
    """The rules in canonical form; InvalidInput naming the key for anything malformed."""
    if rules is None:
        return {}
    if not isinstance(rules, dict):
        raise InvalidInput("comparison rules must be a JSON object")
    unknown = set(rules) - RULE_KEYS
    if unknown:
        raise InvalidInput(f"comparison rules: unknown key(s) {', '.join(sorted(unknown))}")
    clean: dict[str, Any] = {}
    if rules.get("ignore"):
        clean["ignore"] = _paths(rules["ignore"], "ignore")
    if rules.get("numeric_tolerance"):
        clean["numeric_tolerance"] = _tolerance(rules["numeric_tolerance"], "numeric_tolerance")
    if rules.get("field_tolerances"):
        tolerances = rules["field_tolerances"]
        if not isinstance(tolerances, dict):
            raise InvalidInput("comparison rules: field_tolerances must be an object {path: number}")
        clean["field_tolerances"] = {
            str(p).strip(): _tolerance(v, f"field_tolerances.{p}") for p, v in tolerances.items()
        }
    for key in ("case_insensitive", "lists_as_sets"):
        value = rules.get(key)
        if value is True:
            clean[key] = True
        elif value in (None, False, []):
            continue
        else:
            clean[key] = _paths(value, key)
    return clean


def _memo_covers(memo: dict[str, bool], paths: tuple[str, ...], path: str) -> bool:
    """`_covers(paths, path)`, remembered in `memo`."""
    answer = memo.get(path)
    if answer is None:
        answer = memo[path] = _covers(paths, path)
    return answer


def _covers(paths: tuple[str, ...], path: str) -> bool:
    return any(path == p or path.startswith(p + ".") for p in paths)


@dataclass(frozen=True)
class Rules:
    """Rules prepared for fast repeated use (one instance per deployment per batch)."""

    ignore: tuple[str, ...] = ()
    tolerance: float = 0.0
    field_tolerances: dict[str, float] = field(default_factory=dict)
    ci_all: bool = False
    ci_paths: tuple[str, ...] = ()
    sets_all: bool = False
    sets_paths: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, rules: dict[str, Any] | None) -> "Rules":
        rules = rules or {}
        ci, sets = rules.get("case_insensitive"), rules.get("lists_as_sets")
        return cls(
            ignore=tuple(rules.get("ignore") or ()),
            tolerance=float(rules.get("numeric_tolerance") or 0.0),
            field_tolerances=dict(rules.get("field_tolerances") or {}),
            ci_all=ci is True,
            ci_paths=tuple(ci) if isinstance(ci, list) else (),
            sets_all=sets is True,
            sets_paths=tuple(sets) if isinstance(sets, list) else (),
        )

    def __post_init__(self) -> None:
        # Answers per path, memoised: payloads of one deployment share their shape, so each
        # path is resolved against the rules once per batch, not once per pair. One dict per
        # question, looked up directly: these are called for every field of every pair.
        for name in ("_ignored", "_ci", "_sets", "_tolerances"):
            object.__setattr__(self, name, {})

    def ignored(self, path: str) -> bool:
        return bool(self.ignore) and _memo_covers(self._ignored, self.ignore, path)  # type: ignore[attr-defined]

    def case_insensitive(self, path: str) -> bool:
        return self.ci_all or (bool(self.ci_paths) and _memo_covers(self._ci, self.ci_paths, path))  # type: ignore[attr-defined]

    def as_set(self, path: str) -> bool:
        return self.sets_all or (bool(self.sets_paths) and _memo_covers(self._sets, self.sets_paths, path))  # type: ignore[attr-defined]

    def tolerance_for(self, path: str) -> float:
        if not self.field_tolerances:
            return self.tolerance
        memo = self._tolerances  # type: ignore[attr-defined]
        answer = memo.get(path)
        if answer is None:
            answer = memo[path] = self._tolerance_for(path)
        return answer

    def _tolerance_for(self, path: str) -> float:
        best, best_len = None, -1
        for p, tol in self.field_tolerances.items():
            if (path == p or path.startswith(p + ".")) and len(p) > best_len:
                best, best_len = tol, len(p)
        return self.tolerance if best is None else best


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _normalise(value: Any, rule_path: str, rules: Rules) -> Any:
    """A hashable canonical form of a set element (case folded where the rules say so)."""
    if isinstance(value, str):
        return value.casefold() if rules.case_insensitive(rule_path) else value
    if isinstance(value, dict):
        return json.dumps(
            {
                k: _normalise(v, f"{rule_path}.{k}" if rule_path else k, rules)
                for k, v in value.items()
                if not rules.ignored(f"{rule_path}.{k}" if rule_path else k)
            },
            sort_keys=True,
            default=str,
        )
    if isinstance(value, list):
        return json.dumps([_normalise(v, rule_path, rules) for v in value], default=str)
    if _is_number(value) and float(value).is_integer():
        return float(value)  # 1 and 1.0 are the same element
    return value


def _walk(ai: Any, human: Any, path: str, rule_path: str, rules: Rules, diff: list[dict[str, Any]]) -> None:
    kind = type(ai)
    if kind is type(human) and kind in _SCALARS and ai == human:
        return  # equal leaves of the same type: no rule can make them differ
    if rule_path and rules.ignored(rule_path):
        return
    if ai is MISSING or human is MISSING:
        diff.append(
            {
                "path": path,
                "kind": "missing_in_ai" if ai is MISSING else "missing_in_human",
                "ai": None if ai is MISSING else ai,
                "human": None if human is MISSING else human,
            }
        )
        return
    if isinstance(ai, dict) and isinstance(human, dict):
        for key in ai.keys() | human.keys():
            sub = f"{rule_path}.{key}" if rule_path else key
            _walk(ai.get(key, MISSING), human.get(key, MISSING), f"{path}.{key}" if path else key, sub, rules, diff)
        return
    if isinstance(ai, list) and isinstance(human, list):
        if rules.as_set(rule_path):
            a = {_normalise(v, rule_path, rules): v for v in ai}
            h = {_normalise(v, rule_path, rules): v for v in human}
            if a.keys() != h.keys():
                diff.append(
                    {
                        "path": path,
                        "kind": "set",
                        "ai": ai,
                        "human": human,
                        "only_ai": [a[k] for k in a.keys() - h.keys()],
                        "only_human": [h[k] for k in h.keys() - a.keys()],
                    }
                )
            return
        for i in range(max(len(ai), len(human))):
            _walk(
                ai[i] if i < len(ai) else MISSING,
                human[i] if i < len(human) else MISSING,
                f"{path}[{i}]",
                rule_path,
                rules,
                diff,
            )
        return
    if _is_number(ai) and _is_number(human):
        if ai != human and abs(ai - human) > rules.tolerance_for(rule_path):
            diff.append({"path": path, "kind": "changed", "ai": ai, "human": human})
        return
    if isinstance(ai, str) and isinstance(human, str) and rules.case_insensitive(rule_path):
        if ai.casefold() != human.casefold():
            diff.append({"path": path, "kind": "changed", "ai": ai, "human": human})
        return
    if type(ai) is not type(human) or ai != human:
        diff.append({"path": path, "kind": "changed", "ai": ai, "human": human})


def compare(*, ai_type: str, ai_payload: Any, human_type: str, human_payload: Any, rules: Rules) -> dict[str, Any]:
    """`{"agree": bool, "diff": [...]}` for one pair; deterministic (diff sorted by path)."""
    diff: list[dict[str, Any]] = []
    if ai_type != human_type:
        diff.append({"path": "action_type", "kind": "action_type", "ai": ai_type, "human": human_type})
    _walk(ai_payload, human_payload, "", "", rules, diff)
    diff.sort(key=lambda d: (d["path"] != "action_type", d["path"]))
    return {"agree": not diff, "diff": diff}


def compare_proposal(proposal: Any, human_type: str, human_payload: Any, rules: Rules) -> dict[str, Any]:
    """`compare` of a proposal (anything with the AI's `action_type` and `payload`: an action,
    a fetched pair) with what the person did."""
    return compare(
        ai_type=proposal.action_type,
        ai_payload=proposal.payload,
        human_type=human_type,
        human_payload=human_payload,
        rules=rules,
    )
