"""Issue 15 item 8: governed rows are not editable around the services in Django admin. Keys,
members, stages and thresholds are read-only there (a key is revoked through api_key_revoke,
audited); only a deployment's name and description change, audited."""

import pytest
from django.test import Client

from deliveries.models import Delivery
from deployments.models import ApiKey, AuditEvent, Deployment, Member
from deployments.services import api_key_create, api_key_revoke
from reviews.models import Decision, ProposedAction
from reviews.services import proposed_action_reject
from tests.deliveries.factories import DeliveryFactory
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(admin) -> Member:
    admin.user.is_staff = admin.user.is_superuser = True
    admin.user.save()
    return admin


@pytest.fixture
def ac(superuser) -> Client:
    client = Client()
    client.force_login(superuser.user)
    return client


def test_a_revoked_key_cannot_be_unrevoked_nor_moved_to_another_deployment(ac):
    key, _ = api_key_create(deployment=DeploymentFactory())
    other = DeploymentFactory()
    api_key_revoke(key_id=key.pk)
    url = f"/admin/deployments/apikey/{key.pk}/change/"
    page = ac.get(url)
    assert page.status_code == 200
    assert b'name="revoked_at' not in page.content and b'name="deployment"' not in page.content
    r = ac.post(url, {"deployment": other.pk, "name": "moved", "revoked_at_0": "", "revoked_at_1": ""})
    assert r.status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is not None and key.deployment_id != other.pk and key.name != "moved"
    assert ac.get("/admin/deployments/apikey/add/").status_code == 403
    assert ac.post(f"/admin/deployments/apikey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_keys_are_revoked_from_the_admin_through_the_audited_service(ac, superuser):
    deployment = DeploymentFactory()
    live, _ = api_key_create(deployment=deployment)
    gone, _ = api_key_create(deployment=deployment)
    api_key_revoke(key_id=gone.pk)
    r = ac.post("/admin/deployments/apikey/", {"action": "revoke_selected", "_selected_action": [live.pk, gone.pk]})
    assert r.status_code == 302
    live.refresh_from_db()
    assert live.revoked_at is not None
    event = AuditEvent.objects.get(verb="deployments.api_key.revoked", object_id=str(live.pk))
    assert event.actor == superuser.user
    # The key revoked before is not revoked (nor audited) twice.
    assert AuditEvent.objects.filter(verb="deployments.api_key.revoked", object_id=str(gone.pk)).count() == 1


def test_members_are_read_only(ac):
    deployment = DeploymentFactory()
    member = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    url = f"/admin/deployments/member/{member.pk}/change/"
    assert ac.get(url).status_code == 200
    r = ac.post(url, {"user": member.user_id, "role": Member.Role.ADMIN, "deployments": []})
    assert r.status_code == 403
    member.refresh_from_db()
    assert member.role == Member.Role.REVIEWER and list(member.deployments.all()) == [deployment]
    assert ac.get("/admin/deployments/member/add/").status_code == 403
    assert ac.post(f"/admin/deployments/member/{member.pk}/delete/", {"post": "yes"}).status_code == 403


def test_stage_and_thresholds_are_read_only_and_a_name_change_is_audited(ac, superuser):
    deployment = DeploymentFactory(stage="approval")
    url = f"/admin/deployments/deployment/{deployment.pk}/change/"
    form = ac.get(url).context["adminform"].form
    assert set(form.fields) == {"name", "description"}
    r = ac.post(
        url,
        {
            "name": "Renamed",
            "description": "",
            "stage": "autonomous",
            "auto_max_risk": "0.99",
            "auto_min_confidence": "0",
            "audit_sample_rate": "0",
            "paused": "",
            "blast_max_auto": "",
        },
    )
    assert r.status_code == 302
    fresh = Deployment.objects.get(pk=deployment.pk)
    assert fresh.name == "Renamed"
    for field in ("stage", "auto_max_risk", "auto_min_confidence", "audit_sample_rate", "paused", "blast_max_auto"):
        assert getattr(fresh, field) == getattr(deployment, field), field
    event = AuditEvent.objects.get(verb="deployments.deployment.changed")
    assert event.actor == superuser.user and event.data == {"name": {"from": deployment.name, "to": "Renamed"}}
    assert ac.get("/admin/deployments/deployment/add/").status_code == 403
    assert ac.post(f"/admin/deployments/deployment/{deployment.pk}/delete/", {"post": "yes"}).status_code == 403


def test_actions_decisions_and_deliveries_are_not_deleted_or_added_in_the_admin(ac, reviewer, deployment):
    action = ProposedActionFactory(deployment=deployment, status="pending_review", route="review")
    proposed_action_reject(action_id=action.pk, actor=reviewer.user, reason="no")
    decision = Decision.objects.get(action=action)
    delivery = DeliveryFactory(deployment=deployment)
    for url in (
        f"/admin/reviews/proposedaction/{action.pk}/delete/",
        f"/admin/reviews/decision/{decision.pk}/delete/",
        f"/admin/deliveries/delivery/{delivery.pk}/delete/",
    ):
        assert ac.post(url, {"post": "yes"}).status_code == 403, url
    adds = ("/admin/reviews/proposedaction/add/", "/admin/reviews/decision/add/", "/admin/deliveries/delivery/add/")
    for url in adds:
        assert ac.get(url).status_code == 403, url
    assert ProposedAction.objects.filter(pk=action.pk, status="rejected").exists()
    assert Decision.objects.filter(pk=decision.pk).exists() and Delivery.objects.filter(pk=delivery.pk).exists()
