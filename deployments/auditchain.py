"""The tamper-evident audit log (issue 16 item 7): a hash chain over every audit event.

Each event, once sealed, carries `chain_seq` (its place in the chain, 1, 2, 3, ...) and
`chain_hash` = SHA-256(previous event's hash || the event's canonical content), the content
being its CHAINED_FIELDS as RFC 8785 canonical JSON (the `rfc8785` package). Change, delete or
reorder one sealed row and every hash from it on no longer matches: `audit_chain_verify` (and
`manage.py audit_verify`) finds the first such event.

One chain for the whole installation, sealed in order by one periodic task, not at write
time. Why: the agent API writes a proposal's audit event in the very statement that writes
the action (reviews.ingest), and many proposals commit at once. Chaining at write time
means reading the previous hash under a lock held until commit (an advisory lock per chain),
which makes every proposal of a chain wait for the one before it to commit: the hot-row
problem the evidence counters shard away. Sealing afterwards costs the hot path nothing (the
row is written with an empty hash) and a sealer is one writer by construction (an advisory
lock; a second sealer returns at once), so a global chain costs no more than one per
deployment, and it covers events with no deployment (members, keys) too. The price: an event
is covered from its sealing on (the beat task runs every minute); until then it shows as
unsealed on the audit page. Seal order is the order the sealer saw events committed, by id
among them, so an event whose transaction commits late simply gets a later place.

The chain alone proves nothing against someone who rewrites the whole tail, hashes and all,
behind the trigger's back: its anchor is the head recorded elsewhere. Every verification
appends an AuditVerification (head seq and hash) and checks that the previous verified head
is still in the chain; the CSV export ends with the head, and `audit_verify` prints it, so a
head kept outside the database pins everything up to it.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import rfc8785
from django.db import connection, transaction

from deployments.models import AuditEvent, AuditVerification

GENESIS = "0" * 64
# What an event's hash covers. Fixed, not "every field": a field added to AuditEvent later
# would otherwise change the content, and so the hash, of every event sealed before it.
CHAINED_FIELDS = (
    "id",
    "chain_seq",
    "verb",
    "actor_id",
    "actor_label",
    "deployment_id",
    "object_type",
    "object_id",
    "reason",
    "data",
    "created_at",
)
SEAL_BATCH = 5000
# pg_try_advisory_xact_lock key of the sealer: "audit" in ASCII.
_SEAL_LOCK = 0x6175646974
_MAX_SAFE = 2**53 - 1


def _canonical_value(value: Any) -> Any:
    """`value` inside RFC 8785's domain: integers beyond ±(2^53 − 1) (which jsonb can hold,
    I-JSON cannot) become their decimal string, deterministically."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE <= value <= _MAX_SAFE else str(value)
    if isinstance(value, dict):
        return {k: _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_value(v) for v in value]
    return value


def event_content(row: dict[str, Any]) -> bytes:
    """The canonical content of an event (`row`: its CHAINED_FIELDS, as read from the table)."""
    doc = {}
    for name in CHAINED_FIELDS:
        value = row[name]
        if isinstance(value, datetime):
            value = value.isoformat(timespec="microseconds")
        doc[name] = _canonical_value(value)
    return rfc8785.dumps(doc)


def chain_hash(previous: str, row: dict[str, Any]) -> str:
    """SHA-256 over the previous event's hash (its 32 bytes) and `row`'s canonical content."""
    return hashlib.sha256(bytes.fromhex(previous) + event_content(row)).hexdigest()


def _head() -> tuple[int, str]:
    last = (
        AuditEvent.objects.filter(chain_seq__isnull=False).order_by("-chain_seq").values_list("chain_seq", "chain_hash")
    )
    return last.first() or (0, GENESIS)


def audit_chain_seal(*, batch: int = SEAL_BATCH, max_batches: int | None = None) -> int:
    """Seal the unsealed events, oldest id first, in batches of `batch` (one transaction
    each). Returns how many it sealed. Safe to repeat and to run concurrently: a second
    sealer finds the lock taken and returns 0 (PostgreSQL); sealing what is sealed changes
    nothing."""
    sealed, batches = 0, 0
    while max_batches is None or batches < max_batches:
        n = _seal_batch(batch)
        sealed += n
        batches += 1
        if n < batch:
            break
    return sealed


@transaction.atomic
def _seal_batch(batch: int) -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_SEAL_LOCK])
            if not cursor.fetchone()[0]:
                return 0
    seq, previous = _head()
    rows = list(AuditEvent.objects.filter(chain_seq__isnull=True).order_by("id").values(*CHAINED_FIELDS)[:batch])
    if not rows:
        return 0
    updates = []
    for row in rows:
        seq += 1
        row["chain_seq"] = seq
        previous = chain_hash(previous, row)
        updates.append((row["id"], seq, previous))
    _write_seals(updates)
    return len(updates)


def _write_seals(updates: list[tuple[int, int, str]]) -> None:
    """Set (id, seq, hash) on each event in one statement. The append-only trigger lets an
    UPDATE through only when it seals an unsealed row and changes nothing else."""
    table = AuditEvent._meta.db_table
    ids, seqs, hashes = (list(col) for col in zip(*updates, strict=True))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} e SET chain_seq = v.seq, chain_hash = v.h "  # noqa: S608 -- our table
                "FROM (SELECT unnest(%s::bigint[]) id, unnest(%s::bigint[]) seq, unnest(%s::text[]) h) v "
                "WHERE e.id = v.id AND e.chain_seq IS NULL",
                [ids, seqs, hashes],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET chain_seq = %s, chain_hash = %s WHERE id = %s AND chain_seq IS NULL",  # noqa: S608
                [(s, h, i) for i, s, h in updates],
            )


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    broken_event_id: int | None = None
    problem: str = ""
    unsealed: int = 0


def _sealed_rows(chunk: int = 5000) -> Iterator[dict[str, Any]]:
    yield from (
        AuditEvent.objects.filter(chain_seq__isnull=False)
        .order_by("chain_seq")
        .values(*CHAINED_FIELDS, "chain_hash")
        .iterator(chunk_size=chunk)
    )


def audit_chain_check() -> ChainReport:
    """Walk the sealed chain from its start: every place 1..n present once, in order, and
    every hash what its content and its predecessor make. The first event that fails is
    named. Also checks that the head of the last verification (AuditVerification) is still in
    the chain with the same hash, so a rewritten tail shows even if its hashes were redone.
    Reads only; O(events)."""
    seq, previous, checked = 0, GENESIS, 0
    last = AuditVerification.objects.filter(ok=True).order_by("-id").first()
    for row in _sealed_rows():
        expected = seq + 1
        if row["chain_seq"] != expected:
            return _broken(row, checked, seq, previous, f"place {row['chain_seq']} follows {seq}: an event is missing")
        if chain_hash(previous, row) != row["chain_hash"]:
            return _broken(row, checked, seq, previous, "its content or its predecessor's hash was changed")
        if last is not None and row["chain_seq"] == last.head_seq and row["chain_hash"] != last.head_hash:
            return _broken(row, checked, seq, previous, "the chain was rewritten since the last verification")
        seq, previous, checked = expected, row["chain_hash"], checked + 1
    if last is not None and seq < last.head_seq:
        return ChainReport(
            ok=False,
            checked=checked,
            head_seq=seq,
            head_hash=previous,
            problem=f"the chain ends at {seq}, before the last verified head {last.head_seq}: events were removed",
        )
    unsealed = AuditEvent.objects.filter(chain_seq__isnull=True).count()
    return ChainReport(ok=True, checked=checked, head_seq=seq, head_hash=previous, unsealed=unsealed)


def _broken(row: dict, checked: int, seq: int, previous: str, problem: str) -> ChainReport:
    return ChainReport(
        ok=False,
        checked=checked,
        head_seq=seq,
        head_hash=previous,
        broken_event_id=row["id"],
        problem=f"event #{row['id']} (place {row['chain_seq']}): {problem}",
    )


def audit_chain_verify(*, seal: bool = True) -> ChainReport:
    """Seal what is unsealed (unless `seal` is False), check the chain and record the
    result as an AuditVerification (append-only). Returns the report."""
    if seal:
        audit_chain_seal()
    report = audit_chain_check()
    verification = asdict(report)
    del verification["unsealed"]  # for the audit page, not part of the check
    AuditVerification.objects.create(**verification)
    return report


def audit_chain_status() -> dict[str, Any]:
    """For the audit page: the last verification and how many events wait to be sealed."""
    return {
        "verification": AuditVerification.objects.order_by("-id").first(),
        "unsealed": AuditEvent.objects.filter(chain_seq__isnull=True).count(),
    }
