"""Canonical JSON and its SHA-256: the hash that binds an approved payload (SPEC §5, §7).

RFC 8785, the JSON Canonicalization Scheme (JCS), made by the maintained `rfc8785` package:
keys sorted by UTF-16 code units, no whitespace, strings in minimal escapes, UTF-8, and every
number written as ECMAScript writes the IEEE 754 double it is (`100.0` and `100` are both
`100`, `-0.0` is `0`, `1e16` is `10000000000000000`, `1e300` is `1e+300`). So any client in any
language that parses what it received into doubles computes the same hash, whatever spelling
of a number the server's database chose (PostgreSQL's jsonb writes 1e16 as an integer).

The inputs are held to core.jsonlimits first, so every value stored can be hashed.
"""

import hashlib
import json
from typing import Any

import rfc8785

from core.jsonlimits import MAX_SAFE_INTEGER


def _as_doubles(value: Any) -> Any:
    """`value` with integers past ±(2^53 − 1) as the doubles they equal (a JSON number is a
    double to JCS; the package refuses such Python ints rather than guess). Raises ValueError
    for an integer no double holds exactly."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        double = float(value)
        if int(double) != value:
            raise ValueError(f"the integer {value} has no exact IEEE 754 double")
        return double
    if isinstance(value, dict):
        return {key: _as_doubles(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_doubles(item) for item in value]
    return value


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) of `value`, as UTF-8 bytes. Raises ValueError (rfc8785's errors are
    ValueErrors) for what JCS cannot represent: non-finite numbers, lone surrogates."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        return rfc8785.dumps(_as_doubles(value))


def payload_sha256(value: Any) -> str:
    """SHA-256 (hex) of the JCS of `value`: `payload_sha256` and the proposal identity."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def request_fingerprint(body: Any) -> str:
    """SHA-256 of a validated request body, to tell an Idempotency-Key's retry from another
    body. Only ever compared with itself, so not JCS: json's C encoder (sorted keys) is several
    times faster on the hot path, and fingerprints stored before JCS stay valid."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
