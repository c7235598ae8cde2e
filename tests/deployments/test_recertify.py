"""Re-certification (issue 16 item 6): the gate into the current stage, checked again daily.

By hand (z = 1.959964): 150/200 approved unchanged: [0.685659, 0.804918], wholly below 0.90
(the 1→2 agreement bound, re-checked in approval): failed. 480/500: lower 0.939026: holds.
Audited auto-executions in supervised, 20 incorrect of 200: [0.065670, 0.149406], wholly
above 0.02 (the 2→3 changed-or-rejected bound): failed.
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone

from config.celery_app import app as celery_app
from deployments.models import AuditEvent, Deployment, PromotionRequest
from deployments.recertify import deployment_recertify, recertification_evaluate
from deployments.tasks import recertify_all
from tests.deployments.test_breakers import eager_tasks  # noqa: F401, F811 -- a fixture
from tests.deployments.test_gate import add, make
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def failing_approval(**fields) -> Deployment:
    d = make("approval", days_in_stage=20, **fields)
    add(d, "decision.approve", 150)
    add(d, "decision.edit", 30)
    add(d, "decision.reject", 20)
    return d


def test_approval_rechecks_the_1_to_2_agreement_with_its_own_decisions():
    d = failing_approval()
    r = recertification_evaluate(deployment=d)
    assert r["outcome"] == "failed" and r["stage"] == "approval"
    failed = {c["name"]: c for c in r["failed"]}
    assert set(failed) == {"agreement_lower", "per_type_agreement"}
    assert failed["agreement_lower"]["n"] == 200
    assert failed["agreement_lower"]["upper"] == pytest.approx(0.804918, abs=1e-6)
    assert "compared_pairs" not in {c["name"] for c in r["criteria"]}  # a count: not re-checked

    ok = make("approval", days_in_stage=20)
    add(ok, "decision.approve", 480)
    add(ok, "decision.reject", 20)
    assert recertification_evaluate(deployment=ok)["outcome"] == "holds"
    assert recertification_evaluate(deployment=make("approval"))["outcome"] == "insufficient"  # no data
    assert recertification_evaluate(deployment=make("shadow"))["outcome"] == "holds"


def test_supervised_rechecks_the_counterfactual_with_the_audits():
    d = make("supervised", days_in_stage=20)
    add(d, "decision.approve", 480)
    add(d, "decision.reject", 20)
    add(d, "audit.correct", 180)
    add(d, "audit.incorrect", 20)
    r = recertification_evaluate(deployment=d)
    assert [c["name"] for c in r["failed"]] == ["counterfactual_changed_upper"]
    assert r["failed"][0]["lower"] == pytest.approx(0.065670, abs=1e-6)


def test_only_the_stages_own_window_counts():
    d = failing_approval()
    Deployment.objects.filter(pk=d.pk).update(stage_entered_at=timezone.now() + timedelta(days=1))
    d.refresh_from_db()
    assert recertification_evaluate(deployment=d)["outcome"] == "insufficient"


def test_failure_tells_admins_once_and_does_not_demote_without_opting_in(eager_tasks):  # noqa: F811
    d = failing_approval()
    admin = MemberFactory(role="admin")
    admin.user.email = "ops@example.com"
    admin.user.save()
    with TestCase.captureOnCommitCallbacks(execute=True):
        r = deployment_recertify(deployment_id=d.pk)
    with TestCase.captureOnCommitCallbacks(execute=True):
        again = deployment_recertify(deployment_id=d.pk)  # the same day: nothing new
    assert r == again and r["outcome"] == "failed"
    d.refresh_from_db()
    assert d.stage == "approval" and d.recertification["outcome"] == "failed"
    events = AuditEvent.objects.filter(verb="deployments.recertification.failed", deployment=d)
    assert events.count() == 1 and "agreement_lower" in events.get().reason
    assert len(mail.outbox) == 1 and d.slug in mail.outbox[0].subject and "does not opt in" in mail.outbox[0].body
    # The next day, still failing: no second notification while it stays failed.
    with TestCase.captureOnCommitCallbacks(execute=True):
        deployment_recertify(deployment_id=d.pk, now=timezone.now() + timedelta(days=1))
    assert events.count() == 1 and len(mail.outbox) == 1


def test_opted_in_deployment_is_demoted_one_stage_audited_with_the_failed_criteria(admin, eager_tasks):  # noqa: F811
    d = failing_approval(recertify_demotes=True)
    PromotionRequest.objects.create(
        deployment=d, from_stage="approval", to_stage="supervised", requested_by=admin.user, evidence={}
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert recertify_all() == 1
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert recertify_all() == 0  # twice: once a day, and no second demotion
    d.refresh_from_db()
    assert d.stage == "shadow" and d.recertification["demoted_to"] == "shadow"
    demoted = AuditEvent.objects.get(verb="deployments.stage.demoted", deployment=d)
    assert demoted.actor is None and demoted.data["from"] == "approval" and demoted.data["to"] == "shadow"
    assert "agreement_lower" in demoted.reason and demoted.data["recertification"]["outcome"] == "failed"
    assert PromotionRequest.objects.get(deployment=d).status == "cancelled"


def test_deployment_page_shows_it(admin):
    d = failing_approval()
    deployment_recertify(deployment_id=d.pk)
    c = Client()
    c.force_login(admin.user)
    html = c.get(f"/deployments/{d.slug}/").content.decode()
    assert 'id="recertification"' in html and "failed" in html and "agreement_lower" in html


def test_the_beat_runs_it_by_name_on_the_default_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["deployments.recertify_all"]
    assert entry["task"] == "deployments.recertify_all"
    queue, limit = settings.WORKER_TASKS["deployments.recertify_all"]
    assert queue == "default" and limit < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert celery_app.amqp.router.route({}, "deployments.recertify_all")["queue"].name == "default"
