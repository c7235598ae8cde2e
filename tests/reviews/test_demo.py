"""The demo: its loader writes a consistent story (counters agree with the rows they summarise,
nothing in the future), `--reset` starts afresh, the periodic tasks run in-process, and
`bin/demo` serves its real address before it says ready."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from deployments.models import AuditEvent, Deployment, EvidenceCount, Member
from reviews.demo.periodic import Scheduler, entries_from
from reviews.models import Decision, ProposedAction
from reviews.shadow.models import ShadowOutcome
from tests.factories import DeploymentFactory, ProposedActionFactory
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db


def total(metric_prefix: str, **filters) -> int:
    qs = EvidenceCount.objects.filter(metric__startswith=metric_prefix, **filters)
    return qs.aggregate(n=Sum("n"))["n"] or 0


def test_load_demo_tells_a_consistent_story(capsys):
    call_command("load_demo", "--days", "4")
    out = capsys.readouterr().out
    assert "reviewer-demo-pw" in out and "tl_" in out
    stages = dict(Deployment.objects.values_list("slug", "stage"))
    assert stages == {
        "support-triage": "shadow",
        "refunds": "approval",
        "invoice-matching": "supervised",
        "password-resets": "autonomous",
    }
    assert {m.role for m in Member.objects.all()} == {"reviewer", "senior", "admin"}
    actions = ProposedAction.objects.count()
    assert actions > 500
    assert total("proposed.") == actions
    for route in ("shadow", "auto", "review", "senior"):
        assert total(f"proposed.{route}") == ProposedAction.objects.filter(route=route).count()
    human = Decision.objects.exclude(verb__startswith="audit").count()
    assert total("decision.") == human
    assert total("shadow.") == ProposedAction.objects.filter(status="compared").count()
    executed = ProposedAction.objects.filter(status__in=["executed", "failed"]).count()
    assert total("execution.") == executed
    # Queues have something to show right now.
    assert ProposedAction.objects.pending().count() > 0
    assert AuditEvent.objects.filter(verb="deployments.stage.promoted").count() == 6
    from deployments.models import PromotionRequest

    waiting = PromotionRequest.objects.get(status="open")
    assert (waiting.deployment.slug, waiting.to_stage, waiting.requested_by.username) == (
        "refunds",
        "supervised",
        "admin",
    )
    assert waiting.evidence["criteria"]
    assert AuditEvent.objects.filter(verb="deployments.breaker.tripped").count() == 1
    # Issue 15's states, live: a held run, a waiting child, an unknown result, a cancellation.
    statuses = set(ProposedAction.objects.values_list("status", flat=True))
    assert {"held", "unknown", "cancelled"} <= statuses


def test_load_demo_again_keeps_the_history_and_prints_new_keys(capsys):
    call_command("load_demo", "--days", "2")
    before = ProposedAction.objects.count()
    first = capsys.readouterr().out
    call_command("load_demo", "--days", "2")
    second = capsys.readouterr().out
    assert ProposedAction.objects.count() == before
    key = [line.split()[-1] for line in first.splitlines() if line.strip().startswith("refunds")][0]
    assert key not in second


def test_demo_history_is_never_in_the_future_and_each_deployment_is_created_first():
    call_command("load_demo", "--days", "6")
    now = timezone.now()
    assert not AuditEvent.objects.filter(created_at__gt=now).exists()
    assert not Decision.objects.filter(created_at__gt=now).exists()
    for field in ("created_at", "decided_at", "executed_at"):
        assert not ProposedAction.objects.filter(**{f"{field}__gt": now}).exists(), field
    assert not ShadowOutcome.objects.filter(decided_at__gt=now).exists()
    # An expiry is recorded only once the SLA is over.
    assert not ProposedAction.objects.filter(status="expired", expires_at__gt=now).exists()
    for deployment in Deployment.objects.all():
        events = AuditEvent.objects.filter(deployment=deployment).order_by("created_at", "id")
        assert events.first().verb == "deployments.deployment.created", deployment.slug
        assert deployment.created_at <= events.first().created_at + timedelta(seconds=1)
        promotions = events.filter(verb="deployments.stage.promoted")
        for action in ProposedAction.objects.filter(deployment=deployment).order_by("created_at")[:1]:
            assert action.created_at > events.first().created_at
        assert all(p.created_at > events.first().created_at for p in promotions)


@pytest.mark.django_db(transaction=True)  # flush truncates: not inside a test's open transaction
def test_load_demo_reset_starts_afresh(capsys):
    call_command("load_demo", "--days", "2")
    first = ProposedAction.objects.count()
    ProposedActionFactory(deployment=Deployment.objects.get(slug="refunds"))
    capsys.readouterr()
    call_command("load_demo", "--days", "2", "--reset", "--base-url", "http://127.0.0.1:8123/")
    out = capsys.readouterr().out
    assert ProposedAction.objects.count() == first  # rebuilt from nothing, same seed
    assert Deployment.objects.count() == 4
    assert "http://127.0.0.1:8123/accounts/login/" in out and "127.0.0.1:8000" not in out


def test_run_periodic_once_expires_overdue_actions_in_process(capsys):
    deployment = DeploymentFactory(stage="approval")
    overdue = ProposedActionFactory(deployment=deployment, expires_at=timezone.now() - timedelta(minutes=1))
    call_command("run_periodic", "--once")
    out = capsys.readouterr().out
    assert "ran reviews.expire_overdue_actions" in out and "ran deployments.breakers_check_all" in out
    assert ProposedAction.objects.get(pk=overdue.pk).status == "expired"


def test_scheduler_runs_each_entry_when_due_and_skips_missed_runs():
    clock = [100.0]
    entries = entries_from(
        {"a": {"task": "t.a", "schedule": 60.0}, "b": {"task": "t.b", "schedule": timedelta(hours=1)}}
    )
    scheduler = Scheduler(entries, clock=lambda: clock[0])
    ran: list[str] = []
    assert scheduler.run_due(ran.append) == ["t.a", "t.b"]  # all due at start
    clock[0] += 59
    assert scheduler.run_due(ran.append) == []
    assert scheduler.seconds_to_next() == 1
    clock[0] += 600  # ten missed minutes: run once, not ten times
    assert scheduler.run_due(ran.append) == ["t.a"]
    assert ran == ["t.a", "t.b", "t.a"]

    def broken(name: str) -> None:
        raise RuntimeError("boom")

    clock[0] += 60
    assert scheduler.run_due(broken) == ["t.a"]  # a failing task is logged and rescheduled
    assert scheduler.seconds_to_next() == 60


@pytest.mark.skipif(shutil.which("curl") is None, reason="bin/demo waits with curl")
def test_bin_demo_serves_its_real_address_before_it_says_ready(tmp_path):
    """The real command: a fresh SQLite file, an address of our own, no agents, two days."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "TRUSTLADDER_DEMO_ADDR": f"127.0.0.1:{port}",
        "TRUSTLADDER_DEMO_AGENTS": "0",
        "TRUSTLADDER_DEMO_DAYS": "2",
    }
    root = Path(__file__).resolve().parents[2]
    periodic_log = root / ".demo" / "periodic.log"
    # The logs are appended to; only what this run writes counts.
    log_start = periodic_log.stat().st_size if periodic_log.exists() else 0
    demo = subprocess.Popen(
        [str(root / "bin" / "demo"), "--reset"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any("demo is ready" in line for line in lines) and time.monotonic() < deadline:
            assert demo.poll() is None, "".join(lines)
            time.sleep(0.2)
        out = "".join(lines)
        assert f"Trustladder demo is ready: http://127.0.0.1:{port}/" in out, out
        # Ready means serving: the sign-in page answers at once.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as answer:
            assert answer.status == 200
        assert f"http://127.0.0.1:{port}/accounts/login/" in out and ":8000" not in out
        assert "[3/4] Loading the demo data" in out and "[1/4]" in out and "actions" in out
        demo_dir = root / ".demo"
        # The periodic runner starts beside the server: its first sweep lands within a minute
        # even on a loaded machine (it is a Django start and one pass over the schedule).
        ran = "ran reviews.expire_overdue_actions"
        deadline = time.monotonic() + 60
        while ran not in periodic_log.read_text()[log_start:] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ran in periodic_log.read_text()[log_start:]
        assert "GET /accounts/login/" in (demo_dir / "server.log").read_text()
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=30)
        reader.join(timeout=10)
    # Request lines went to the file, never to the terminal.
    assert not any("GET /" in line for line in lines), "".join(lines)
    # Stopping the demo stops what it started: the port is free again.
    for _ in range(50):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.2)
    else:
        pytest.fail("the demo's server still listens after the demo stopped")
