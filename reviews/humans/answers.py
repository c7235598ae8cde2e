"""A person's JSON answer (a blind answer's payload), parsed strictly: whatever is sent, the
result is a JSON object PostgreSQL's jsonb can store and the comparison can walk, or
InvalidInput with the reason. Nothing is stored from a refused answer."""

import json
import math
from typing import Any

from deployments.errors import InvalidInput

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _check(value: Any) -> None:
    """Depth, NUL and lone surrogates, walked without recursion (deep input can't overflow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"the answer is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, sub in item.items():
                _check_text(key)
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**63 - 1:
            raise InvalidInput("the answer holds an integer outside 64 bits")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise InvalidInput("the answer contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the answer contains a lone surrogate (not valid Unicode)") from None


def answer_payload_parse(raw: str) -> dict[str, Any]:
    """The JSON object in `raw`, or InvalidInput naming what is wrong."""
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise InvalidInput(f"the answer is larger than {MAX_BYTES // 1024} KiB")
    try:
        value = json.loads(raw, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise InvalidInput(f"the answer is nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the answer is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:
        raise InvalidInput(f"the answer is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput("the answer must be a JSON object (the payload you would approve)")
    _check(value)
    return value
