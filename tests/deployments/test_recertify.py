"""Re-certification (issue 16 item 6): the current stage's own gate, daily; opt-in demotion."""

import pytest
from django.core import mail

from deployments.counters import Metric, evidence_add
from deployments.models import AuditEvent, Deployment, Member
from deployments.recertify import deployment_recertify, recertification_evaluate
from deployments.settings_changes import deployment_settings_change, lowering_fields
from deployments.tasks import recertify_all
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db


def _autonomous(*, failed: int, executed: int = 400, **kw) -> Deployment:
    deployment = DeploymentFactory(stage="autonomous", **kw)
    evidence_add(deployment_id=deployment.pk, action_type="t", metric=Metric.EXECUTION_EXECUTED_AUTO, n=executed)
    evidence_add(deployment_id=deployment.pk, action_type="t", metric=Metric.EXECUTION_FAILED_AUTO, n=failed)
    return deployment


def test_a_stage_whose_own_gate_fails_is_reported_audited_and_mailed(client):
    admin = MemberFactory(role=Member.Role.ADMIN)
    admin.user.email = "admin@example.com"
    admin.user.save()
    deployment = _autonomous(failed=60)  # 13 % failures; the 3→4 gate allows an upper bound of 1 %
    assert recertify_all() == 1
    deployment.refresh_from_db()
    result = deployment.recertification
    assert not result["holds"] and any("failure rate" in f for f in result["failed"])
    assert deployment.stage == "autonomous"  # not opted in: told, not demoted
    event = AuditEvent.objects.get(verb="deployments.recertification.failed")
    assert "failure rate" in event.reason and event.actor_label == "system"
    assert len(mail.outbox) == 1 and deployment.slug in mail.outbox[0].subject
    client.force_login(admin.user)
    page = client.get(f"/deployments/{deployment.slug}/").content.decode()
    assert 'data-testid="recertification"' in page and "no longer meets its own gate" in page
    assert recertify_all() == 0  # safe to repeat: told once per stage
    assert AuditEvent.objects.filter(verb="deployments.recertification.failed").count() == 1


def test_an_opted_in_deployment_is_demoted_one_stage_audited_with_the_failed_criteria():
    deployment = _autonomous(failed=60, recertify_demote=True)
    check = deployment_recertify(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.stage == "supervised" and check.result["demoted_to"] == "supervised"
    demoted = AuditEvent.objects.get(verb="deployments.stage.demoted")
    assert demoted.actor_label == "system" and "failure rate" in demoted.reason
    assert demoted.data["from"] == "autonomous" and demoted.data["to"] == "supervised"
    deployment_recertify(deployment_id=deployment.pk)  # the new stage starts afresh
    assert Deployment.objects.get(pk=deployment.pk).stage == "supervised"


def test_a_healthy_or_unmeasured_stage_holds():
    healthy = _autonomous(failed=0, executed=2000)
    assert recertification_evaluate(deployment=healthy).holds
    quiet = DeploymentFactory(stage="supervised")  # no evidence at all: nothing fails
    check = recertification_evaluate(deployment=quiet)
    assert check.holds and check.failed == []
    assert recertification_evaluate(deployment=DeploymentFactory(stage="shadow")).holds


def test_opting_in_applies_at_once_and_opting_out_needs_a_second_admin():
    deployment = DeploymentFactory(stage="supervised")
    alice = MemberFactory(role=Member.Role.ADMIN).user
    assert deployment_settings_change(
        deployment_id=deployment.pk, actor=alice, changes={"recertify_demote": True}, reason="r"
    ).applied
    deployment.refresh_from_db()
    assert lowering_fields(deployment, {"recertify_demote": False}) == ["recertify_demote"]
