"""What JSON Trustladder takes in: I-JSON values it can store, serve and hash exactly.

Every JSON value a person or an agent sends (an API body, an edited payload) is held to these
limits before anything is stored, so that what is stored is what is served and what is hashed
(RFC 8785, reviews.canonical), and nothing an agent sends can make a page or the database fail:

- numbers are finite IEEE 754 doubles (`1e400` is refused, not stored as null); integers
  written as such stay within ±(2^53 − 1), the range every JSON reader holds exactly (I-JSON,
  RFC 7493 §2.2);
- strings (and object keys) hold no NUL (PostgreSQL's text and jsonb cannot) and no lone
  surrogate (UTF-8 cannot: RFC 7493 §2.1);
- a field's value nests at most MAX_DEPTH objects or arrays (the value itself is level 1), well
  within what every page renders.

A problem raises JsonProblem naming the field by its path (`payload.items[3].sku`).
`NumbersAsDoubles` reads stored JSON back with numbers as doubles: PostgreSQL's jsonb writes an
integral double such as 1e16 as the integer 10000000000000000, which must come back as the
double it was.
"""

import json
import math
import re
import sys
from typing import Any

MAX_DEPTH = 64
MAX_SAFE_INTEGER = 2**53 - 1
# Before the limits, the API parsed JSON as deep as Python's default recursion limit.
LEGACY_DEPTH = 1000
# NUL and the UTF-16 surrogates, which a JSON string can carry only as \u escapes.
_FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")


class JsonProblem(ValueError):
    """A JSON value outside the limits: `field` is its path, `message` what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def text_problem(text: str) -> str | None:
    """What keeps `text` out of PostgreSQL (a NUL, a lone surrogate), or None."""
    found = _FORBIDDEN_CHARS.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000)"
    return f"contains a lone surrogate (U+{ord(found.group()):04X}), which is not Unicode text"


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def json_check(value: Any, *, field: str, depth: int = 1) -> None:
    """Raise JsonProblem if `value` (parsed JSON, the value of `field`) is outside the limits.

    `depth` is the level of `value` itself (1 for a field's value)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise JsonProblem(field, problem)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise JsonProblem(field, "integer outside ±(2^53 − 1), which JSON readers cannot all hold exactly (I-JSON)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise JsonProblem(field, "number is not a finite IEEE 754 double (out of range)")
    elif isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            raise JsonProblem(field, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, list):
            for i, item in enumerate(value):
                json_check(item, field=_child(field, i), depth=depth + 1)
            return
        for key, item in value.items():
            problem = text_problem(key)
            if problem:
                raise JsonProblem(field, f"a key {problem}")
            json_check(item, field=_child(field, key), depth=depth + 1)


def body_check(body: Any) -> None:
    """`json_check` each field of a request body (an object, or a list of objects): every
    field's value is level 1, so a payload nests the same depth in any request."""
    items = body if isinstance(body, list) else [body]
    for index, item in enumerate(items):
        prefix = f"[{index}]" if isinstance(body, list) else ""
        if isinstance(item, dict):
            for key, value in item.items():
                problem = text_problem(key)
                if problem:
                    raise JsonProblem(prefix or "body", f"a field name {problem}")
                json_check(value, field=_child(prefix, key), depth=1)
        else:
            json_check(item, field=prefix or "body", depth=1)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_parse(text: str) -> Any:
    """Parse JSON text (no NaN or Infinity). Raises ValueError for text that is not JSON, and
    JsonProblem for nesting too deep to parse (the json module recurses once per level)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonProblem(_deep_field(text), f"nested deeper than {MAX_DEPTH} levels") from None


def _deep_field(text: str) -> str:
    """The top-level field of `text` under which nesting passes MAX_DEPTH (for the message
    only; the text is too deep for the json module). A scan of strings and brackets."""
    depth, in_string, escaped, key, last_string, start = 0, False, False, "", "", 0
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                last_string = text[start:i]
        elif char == '"':
            in_string, start = True, i + 1
        elif char == ":" and depth == 1:
            key = last_string
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH + 1:
                return key or "body"
        elif char in "]}":
            depth -= 1
    return key or "body"


def _double_int(text: str) -> int | float:
    if len(text) < 16:  # |value| < 10^15 (or -10^14): within the safe range
        return int(text)
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else float(text)


class NumbersAsDoubles(json.JSONDecoder):
    """Stored JSON read back as it was sent: an integer past ±(2^53 − 1) can only have been
    stored from a double (larger integers are refused on input), so it is read as that double."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("parse_int", _double_int)
        super().__init__(**kwargs)

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(s, *args, **kwargs)
        except RecursionError:
            # A value stored before the input limits, nested nearly as deep as the recursion
            # limit allowed then: read it with room to spare, so its page opens (and shows a
            # note) instead of failing and jamming its queue.
            limit = sys.getrecursionlimit()
            sys.setrecursionlimit(limit + LEGACY_DEPTH)
            try:
                return super().decode(s, *args, **kwargs)
            finally:
                sys.setrecursionlimit(limit)


def json_display(value: Any, *, indent: int | None = 2, sort_keys: bool = True) -> str:
    """`value` as JSON text for a page (keys sorted unless `sort_keys=False`, as the payload
    editor keeps the order the page shows; non-ASCII kept). A value stored before
    these limits may nest too deep for the indenting encoder (it recurses in Python): then
    compact, and if even that is too deep, a note instead of an error page."""
    for step in (indent, None):
        try:
            return json.dumps(value, indent=step, ensure_ascii=False, sort_keys=sort_keys)
        except RecursionError:
            continue
    return f"(nested too deep to display: more than {MAX_DEPTH} levels)"
