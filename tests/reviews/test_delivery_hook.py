"""Every human (or clock) decision on an action with a callback_url writes one outbox row in
the decision's transaction; nothing else does."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deliveries.models import Delivery
from reviews.representation import action_representation
from reviews.services import (
    Proposal,
    proposed_action_approve,
    proposed_action_create,
    proposed_action_escalate,
    proposed_action_expire,
    proposed_action_reject,
)
from tests.deliveries.support import eager_celery, http_receiver  # noqa: F401 -- a fixture
from tests.factories import ProposedActionFactory

pytestmark = pytest.mark.django_db
HOOK = "https://agent.example/hooks/trustladder"


def pending(deployment, **kw):
    return ProposedActionFactory(deployment=deployment, callback_url=HOOK, **kw)


def only_delivery(action) -> Delivery:
    (delivery,) = Delivery.objects.filter(object_type="reviews.proposedaction", object_id=str(action.pk))
    return delivery


def test_approval_writes_the_action_as_the_api_shows_it(reviewer, django_capture_on_commit_callbacks):
    action = pending(reviewer.deployments.first())
    with django_capture_on_commit_callbacks() as callbacks:
        approved = proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    delivery = only_delivery(action)
    assert len(callbacks) == 1  # enqueued only once the decision has committed
    body = json.loads(delivery.body)
    assert body == json.loads(json.dumps(action_representation(approved)))
    assert (body["status"], body["decision"]) == ("approved", "execute")
    assert body["payload_sha256"] == approved.payload_sha256
    assert (delivery.event_type, delivery.url, delivery.status) == ("action.approved", HOOK, Delivery.Status.PENDING)
    assert delivery.deployment_id == action.deployment_id


def test_an_edit_delivers_the_final_payload(reviewer):
    action = pending(reviewer.deployments.first())
    proposed_action_approve(action_id=action.pk, actor=reviewer.user, payload={"amount_cents": 1})
    body = json.loads(only_delivery(action).body)
    assert body["final_payload"] == {"amount_cents": 1} and body["payload"] == action.payload


def test_rejection_and_expiry_are_delivered(reviewer):
    deployment = reviewer.deployments.first()
    rejected = pending(deployment)
    proposed_action_reject(action_id=rejected.pk, actor=reviewer.user, reason="duplicate refund")
    body = json.loads(only_delivery(rejected).body)
    assert (body["decision"], body["reason"]) == ("reject", "duplicate refund")
    assert only_delivery(rejected).event_type == "action.rejected"

    expired = pending(deployment)
    proposed_action_expire(action_id=expired.pk, now=expired.expires_at + timedelta(seconds=1))
    assert json.loads(only_delivery(expired).body)["decision"] == "expired"
    assert only_delivery(expired).event_type == "action.expired"
    # Due now by the wall clock, whatever logical time the expiry was computed at.
    assert only_delivery(expired).next_attempt_at <= timezone.now()


def test_escalation_auto_approval_and_actions_without_callback_deliver_nothing(reviewer, deployment):
    escalated = pending(deployment)
    proposed_action_escalate(action_id=escalated.pk, actor=reviewer.user, reason="big amount")
    proposed_action_create(
        deployment=deployment,
        proposal=Proposal(
            action_type="refund.issue",
            payload={"amount_cents": 1},
            risk_score=0.01,
            confidence=0.999,
            callback_url=HOOK,
        ),
    )
    silent = ProposedActionFactory(deployment=deployment)
    proposed_action_approve(action_id=silent.pk, actor=reviewer.user)
    assert not Delivery.objects.exists()


def test_a_decision_rolled_back_delivers_nothing(reviewer):
    action = pending(reviewer.deployments.first())
    with pytest.raises(RuntimeError), transaction.atomic():
        proposed_action_approve(action_id=action.pk, actor=reviewer.user)
        raise RuntimeError("the surrounding work failed")
    assert not Delivery.objects.exists()


@pytest.mark.usefixtures("eager_celery")
def test_in_process_mode_delivers_as_soon_as_the_decision_commits(reviewer, django_capture_on_commit_callbacks):
    deployment = reviewer.deployments.first()
    with http_receiver() as receiver:
        action = ProposedActionFactory(deployment=deployment, callback_url=receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            proposed_action_reject(action_id=action.pk, actor=reviewer.user, reason="no")
        (request,) = receiver.all()
    assert request.headers["webhook-id"] == only_delivery(action).webhook_id
    assert only_delivery(action).status == Delivery.Status.DELIVERED
