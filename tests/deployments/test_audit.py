import pytest
from django.db import DatabaseError, connection, transaction

from deployments.models import AuditEvent
from deployments.services import audit_event_record
from reviews.models import Decision
from reviews.services import proposed_action_approve
from tests.factories import DeploymentFactory, ProposedActionFactory


@pytest.mark.django_db
def test_model_refuses_update_and_delete(deployment):
    event = audit_event_record(verb="test.thing", deployment=deployment)
    event.reason = "changed"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_trigger_refuses_update_and_delete_of_audit_and_decisions(reviewer):
    assert connection.vendor == "postgresql"
    deployment = reviewer.deployments.first()
    event = audit_event_record(verb="test.thing", deployment=deployment)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Decision.objects.filter(action=action).update(reason="tampered")
    assert AuditEvent.objects.get(pk=event.pk).reason == ""


@pytest.mark.django_db
def test_event_belongs_to_the_deployment_its_object_implies(deployment, reviewer):
    other = DeploymentFactory()
    action = ProposedActionFactory(deployment=deployment)
    assert audit_event_record(verb="test.action", obj=action).deployment_id == deployment.pk
    assert audit_event_record(verb="test.deployment", obj=deployment).deployment_id == deployment.pk
    # A member is outside any deployment; a deployment given outright wins over the object.
    assert audit_event_record(verb="test.member", obj=reviewer).deployment_id is None
    assert audit_event_record(verb="test.both", obj=action, deployment=other).deployment_id == other.pk
