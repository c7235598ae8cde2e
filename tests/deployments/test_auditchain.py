"""The audit log's hash chain (issue 16 item 7): sealing, verifying, finding tampering."""

import csv
import hashlib
import io

import pytest
import rfc8785
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from deployments.auditchain import GENESIS, audit_chain_check, audit_chain_seal, audit_chain_verify
from deployments.models import AuditEvent, AuditVerification
from deployments.services import audit_event_record
from tests.conftest import proposal
from tests.reviews.test_concurrency import run_together

pytestmark = pytest.mark.django_db


def _events(deployment, n: int) -> list[AuditEvent]:
    return [audit_event_record(verb="test.thing", deployment=deployment, data={"i": i}) for i in range(n)]


def test_sealing_chains_events_in_id_order_with_sha256_over_rfc8785(deployment):
    events = _events(deployment, 5)
    assert audit_chain_seal() == AuditEvent.objects.count()
    rows = list(AuditEvent.objects.order_by("chain_seq"))
    assert [r.chain_seq for r in rows] == list(range(1, len(rows) + 1))
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    # Recomputed here by hand from the documented recipe, not by the module's own function.
    previous = GENESIS
    for r in rows:
        content = {
            "id": r.id,
            "chain_seq": r.chain_seq,
            "verb": r.verb,
            "actor_id": r.actor_id,
            "actor_label": r.actor_label,
            "deployment_id": r.deployment_id,
            "object_type": r.object_type,
            "object_id": r.object_id,
            "reason": r.reason,
            "data": r.data,
            "created_at": r.created_at.isoformat(timespec="microseconds"),
        }
        previous = hashlib.sha256(bytes.fromhex(previous) + rfc8785.dumps(content)).hexdigest()
        assert r.chain_hash == previous
    assert events[-1].pk == rows[-1].pk
    assert audit_chain_seal() == 0  # safe to repeat
    report = audit_chain_check()
    assert report.ok and report.head_seq == len(rows) and report.head_hash == previous


def test_events_written_later_extend_the_chain(deployment):
    _events(deployment, 3)
    audit_chain_seal()
    head = audit_chain_check()
    _events(deployment, 2)
    assert audit_chain_check().unsealed == 2
    audit_chain_seal(batch=1)  # in batches of one: the same chain
    report = audit_chain_check()
    assert report.ok and report.head_seq == head.head_seq + 2 and report.unsealed == 0


def test_proposals_written_by_the_hot_path_are_sealed_too(deployment, api):
    for i in range(3):
        assert api.post("/api/v1/actions", proposal(external_id=f"E-{i}")).status_code == 201
    proposed = AuditEvent.objects.filter(verb__in=["reviews.action.proposed", "reviews.action.auto_approved"])
    assert proposed.filter(chain_seq__isnull=True).count() == 3
    audit_chain_seal()
    assert not AuditEvent.objects.filter(chain_seq__isnull=True).exists()
    assert audit_chain_check().ok


def test_integers_beyond_i_json_do_not_stop_the_chain(deployment):
    audit_event_record(verb="test.big", deployment=deployment, data={"n": 10**20, "f": 1e16})
    assert audit_chain_seal() >= 1
    assert audit_chain_check().ok


def _tamper(sql: str, params: list) -> None:
    """Change the log behind the append-only trigger's back (as a superuser could)."""
    with connection.cursor() as cursor:
        # A superuser's way round every trigger of the session (replication mode).
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.mark.postgres
def test_audit_verify_finds_a_row_edited_behind_the_triggers_back(deployment, capsys):
    events = _events(deployment, 6)
    call_command("audit_verify")
    assert "audit chain ok" in capsys.readouterr().out
    _tamper("UPDATE deployments_auditevent SET reason = 'nothing happened' WHERE id = %s", [events[3].pk])
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f"event #{events[3].pk} " in err and "content" in err
    last = AuditVerification.objects.order_by("-id").first()
    assert not last.ok and last.broken_event_id == events[3].pk


@pytest.mark.postgres
def test_a_deleted_event_breaks_the_chain_at_the_next_one(deployment):
    events = _events(deployment, 5)
    audit_chain_seal()
    _tamper("DELETE FROM deployments_auditevent WHERE id = %s", [events[2].pk])
    report = audit_chain_check()
    assert not report.ok and report.broken_event_id == events[3].pk and "missing" in report.problem


@pytest.mark.postgres
def test_a_tail_rewritten_with_fresh_hashes_is_caught_by_the_last_verified_head(deployment):
    from deployments.auditchain import chain_hash

    events = _events(deployment, 4)
    assert audit_chain_verify().ok
    # Rewrite the last event and redo its hash: the chain alone would still look whole.
    victim = AuditEvent.objects.filter(pk=events[-1].pk).values().get()
    previous = AuditEvent.objects.get(chain_seq=victim["chain_seq"] - 1).chain_hash
    victim["reason"] = "rewritten"
    forged = chain_hash(previous, victim)
    _tamper(
        "UPDATE deployments_auditevent SET reason = 'rewritten', chain_hash = %s WHERE id = %s", [forged, victim["id"]]
    )
    report = audit_chain_check()
    assert not report.ok and report.broken_event_id == victim["id"] and "rewritten" in report.problem


@pytest.mark.postgres
def test_the_trigger_lets_only_the_seal_through(deployment):
    event = _events(deployment, 1)[0]
    table = "deployments_auditevent"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
        # Sealing and changing the content at once.
        c.execute(f"UPDATE {table} SET chain_seq = 999, chain_hash = 'x', reason = 'y' WHERE id = %s", [event.pk])  # noqa: S608
    audit_chain_seal()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
        c.execute(f"UPDATE {table} SET chain_hash = 'ab' WHERE id = %s", [event.pk])  # noqa: S608 -- re-sealing
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditVerification.objects.create(ok=True, checked=0, head_seq=0, head_hash=GENESIS)
        AuditVerification.objects.update(ok=False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sealers_seal_each_event_once(deployment):
    _events(deployment, 300)
    results = run_together(*[lambda: audit_chain_seal(batch=50) for _ in range(4)])
    assert not [r for r in results if isinstance(r, Exception)]
    audit_chain_seal()
    seqs = sorted(AuditEvent.objects.values_list("chain_seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert audit_chain_check().ok


def test_the_audit_page_shows_the_verified_head_and_the_csv_ends_with_it(client, admin, deployment):
    _events(deployment, 3)
    client.force_login(admin.user)
    assert "not verified yet" in client.get("/audit/").content.decode()
    report = audit_chain_verify()
    page = client.get("/audit/").content.decode()
    assert "verified" in page and report.head_hash in page
    r = client.get("/audit/", {"format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0][-2:] == ["chain_seq", "chain_hash"]
    assert rows[-1][0].startswith("# audit chain head verified")
    assert rows[-1][1:3] == [f"seq={report.head_seq}", f"sha256={report.head_hash}"]
    newest = rows[1]
    assert newest[-1] == AuditEvent.objects.get(chain_seq=report.head_seq).chain_hash


def test_the_audit_page_says_when_the_chain_is_broken(client, admin, deployment):
    AuditVerification.objects.create(
        ok=False, checked=2, head_seq=2, head_hash=GENESIS, broken_event_id=7, problem="event #7 (place 3): changed"
    )
    client.force_login(admin.user)
    assert "BROKEN" in client.get("/audit/").content.decode()


def test_the_daily_task_verifies_and_records(deployment):
    from deployments.tasks import audit_chain_seal_task, audit_chain_verify_task

    _events(deployment, 2)
    assert audit_chain_seal_task() >= 2
    assert audit_chain_verify_task() is True
    assert AuditVerification.objects.get().ok
