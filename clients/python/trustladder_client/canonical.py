"""The canonical JSON of a payload and its SHA-256, exactly as the server computes them.

RFC 8785, the JSON Canonicalization Scheme, by the maintained `rfc8785` package. To JCS every
JSON number is an IEEE 754 double, so an integer this process holds past ±(2^53 − 1), such as
the 10000000000000000 a server may write for 1e16, is hashed as the double it equals.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

_SAFE = 2**53 - 1


def _doubles(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_doubles(v) for v in value]
    if type(value) is int and abs(value) > _SAFE:
        if int(float(value)) != value:
            raise ValueError(f"{value} is not a JSON number any reader holds exactly (no IEEE 754 double equals it)")
        return float(value)
    return value


def canonical_json(payload: Any) -> bytes:
    """RFC 8785 (JCS) of `payload` as UTF-8 bytes."""
    try:
        return rfc8785.dumps(payload)
    except rfc8785.IntegerDomainError:
        return rfc8785.dumps(_doubles(payload))


def payload_sha256(payload: Any) -> str:
    """SHA-256 (hex) of the payload's JCS: compare it with an action's `payload_sha256`."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()
