"""Circuit breakers (SPEC §3): trip, fail closed, notify, hold until an admin resets."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from config.celery_app import app as celery_app
from deployments.breakers import breaker_reading
from deployments.counters import counters_add, evidence_deltas
from deployments.errors import InvalidTransition, NotAllowed
from deployments.models import AuditEvent, Deployment
from deployments.services import breaker_check, breaker_reset, evidence_add
from deployments.tasks import breaker_notify, breakers_check_all
from tests.conftest import proposal
from tests.factories import action_propose

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_tasks():
    """Run tasks enqueued on commit in-process, whatever the broker settings."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def record(deployment, metric, n=1):
    evidence_add(deployment_id=deployment.pk, action_type="t.a", metric=metric, n=n)


def record_at(deployment, metric, n=1, *, at):
    """A live event that happened `at`: its day's counter and the breaker's minute of `at`."""
    counters_add(evidence_deltas(deployment_id=deployment.pk, action_type="t.a", metric=metric, n=n, at=at))


def test_failure_rate_above_threshold_trips_only_with_enough_events(deployment):
    record(deployment, "execution.executed.auto", 16)
    record(deployment, "execution.failed.auto", 3)  # 3/19: over 5%, but fewer than 20 events
    assert not breaker_check(deployment=deployment)
    record(deployment, "execution.executed.auto", 1)  # 3/20 = 15%
    assert breaker_check(deployment=deployment)
    deployment.refresh_from_db()
    assert deployment.breaker_tripped and "failure rate 15.0%" in deployment.breaker_reason
    assert deployment.fail_closed
    event = AuditEvent.objects.get(verb="deployments.breaker.tripped", deployment=deployment)
    assert event.data["failures"] == 3 and event.data["executions"] == 20
    assert not breaker_check(deployment=deployment)  # safe to repeat: trips once


def test_failure_rate_at_or_below_threshold_does_not_trip(deployment):
    record(deployment, "execution.executed.auto", 19)
    record(deployment, "execution.failed.auto", 1)  # 5%: not above 5%
    assert not breaker_check(deployment=deployment)


def test_audit_rejected_rate_trips(deployment):
    record(deployment, "audit.correct", 17)
    record(deployment, "audit.incorrect", 3)  # 15% > 10%
    assert breaker_check(deployment=deployment)
    deployment.refresh_from_db()
    assert "audit-rejected rate" in deployment.breaker_reason


def test_volume_spike_against_the_trailing_baseline_trips(deployment):
    now = timezone.now()
    for hours_ago in range(2, 26):  # 24 h of baseline: 4 auto-approvals an hour
        record_at(deployment, "proposed.auto", 4, at=now - timedelta(hours=hours_ago))
    record(deployment, "proposed.auto", 20)  # 20 = 5 × 4: not above
    reading = breaker_reading(deployment)
    assert reading.baseline_per_window == pytest.approx(4.0)
    assert not breaker_check(deployment=deployment)
    record(deployment, "proposed.auto", 1)
    assert breaker_check(deployment=deployment)


def test_backfilled_counters_do_not_feed_the_breaker(deployment):
    evidence_add(
        deployment_id=deployment.pk,
        action_type="t.a",
        metric="execution.failed.auto",
        n=50,
        day=timezone.now().date(),
    )
    assert breaker_reading(deployment).executions == 0


def test_no_breaker_below_stage_3(deployment):
    Deployment.objects.filter(pk=deployment.pk).update(stage="approval")
    deployment.refresh_from_db()
    record(deployment, "execution.failed.auto", 50)
    assert not breaker_check(deployment=deployment)


def test_trip_notifies_admins_by_email_and_chat_webhook(deployment, admin, settings, eager_tasks):
    admin.user.email = "ops@example.com"
    admin.user.save()
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.TRUSTLADDER_SLACK_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        record(deployment, "execution.failed.auto", 20)
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert breaker_check(deployment=deployment)
    finally:
        server.shutdown()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"] and deployment.slug in mail.outbox[0].subject
    assert "failure rate" in mail.outbox[0].body
    assert len(received) == 1 and deployment.slug in received[0]["text"]


def test_notification_is_skipped_once_reset(deployment, admin):
    record(deployment, "execution.failed.auto", 20)
    breaker_check(deployment=deployment)
    event = AuditEvent.objects.get(verb="deployments.breaker.tripped")
    breaker_reset(deployment_id=deployment.pk, actor=admin.user, reason="fixed")
    assert breaker_notify(deployment.pk, event.pk) is False
    assert mail.outbox == []


def test_reset_needs_an_admin_and_restarts_the_window(deployment, admin, senior):
    record(deployment, "execution.failed.auto", 20)
    assert breaker_check(deployment=deployment)
    with pytest.raises(NotAllowed):
        breaker_reset(deployment_id=deployment.pk, actor=senior.user, reason="x")
    breaker_reset(deployment_id=deployment.pk, actor=admin.user, reason="root cause fixed")
    deployment.refresh_from_db()
    assert not deployment.breaker_tripped and deployment.breaker_reset_at is not None
    event = AuditEvent.objects.get(verb="deployments.breaker.reset")
    assert event.actor == admin.user and event.reason == "root cause fixed" and event.data["tripped_reason"]
    # The events that tripped it are before the reset: they do not trip it again.
    assert not breaker_check(deployment=deployment)
    with pytest.raises(InvalidTransition):
        breaker_reset(deployment_id=deployment.pk, actor=admin.user, reason="again")


def test_result_reports_check_the_breaker_and_the_next_action_waits(deployment, api):
    ids = []
    for i in range(20):
        r = api.post("/api/v1/actions", proposal(external_id=f"e{i}"))
        assert r.status_code == 201 and r.json()["decision"] == "execute"
        ids.append((r.json()["id"], r.json()["payload_sha256"]))
    for i, (pk, sha) in enumerate(ids):
        status = "failed" if i < 3 else "executed"
        assert api.post(f"/api/v1/actions/{pk}/claim", {}).status_code == 200
        r = api.post(f"/api/v1/actions/{pk}/result", {"status": status, "payload_sha256": sha})
        assert r.status_code == 200
    deployment.refresh_from_db()
    assert deployment.breaker_tripped
    r = api.post("/api/v1/actions", proposal(external_id="after"))
    assert r.status_code == 201 and r.json()["decision"] == "wait" and r.json()["route"] == "review"
    assert api.get("/api/v1/deployment").json()["breaker_tripped"] is True


def test_periodic_task_checks_every_armed_deployment_and_is_safe_to_repeat(deployment):
    record(deployment, "audit.incorrect", 25)
    assert breakers_check_all() == 1
    assert breakers_check_all() == 0
    assert AuditEvent.objects.filter(verb="deployments.breaker.tripped").count() == 1


def test_a_tripped_breaker_routes_to_review_at_once(deployment):
    record(deployment, "execution.failed.auto", 20)
    breaker_check(deployment=deployment)
    deployment.refresh_from_db()
    action = action_propose(deployment, **proposal())
    assert action.route == "review"


def test_purge_drops_old_buckets_and_budget_rows(deployment):
    from deployments.models import BlastRadiusUse, BreakerCount
    from deployments.tasks import purge_windows

    old = timezone.now() - timedelta(days=4)
    record_at(deployment, "proposed.auto", at=old)
    record(deployment, "proposed.auto")
    BlastRadiusUse.objects.create(deployment=deployment, at=old)
    BlastRadiusUse.objects.create(deployment=deployment)
    assert purge_windows() == 2
    assert purge_windows() == 0
    assert BreakerCount.objects.count() == 1 and BlastRadiusUse.objects.count() == 1
