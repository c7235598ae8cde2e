"""Decisions and quorum approvals are written once: the ORM refuses to change or delete them
(reviews.models.Immutable; PostgreSQL's trigger refuses it too for decisions: test_audit)."""

import pytest

from reviews.models import Decision, QuorumApproval
from reviews.services import proposed_action_approve
from tests.factories import ProposedActionFactory


@pytest.mark.django_db
def test_a_decision_cannot_be_changed_or_deleted(reviewer, deployment):
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_approve(action_id=action.pk, actor=reviewer.user)
    decision = Decision.objects.get(action=action)
    decision.reason = "rewritten"
    with pytest.raises(ValueError, match="Decision rows are immutable"):
        decision.save()
    with pytest.raises(ValueError, match="immutable"):
        decision.delete()
    assert Decision.objects.get(pk=decision.pk).reason == ""


@pytest.mark.django_db
def test_a_quorum_approval_cannot_be_changed_or_deleted(reviewer, deployment):
    action = ProposedActionFactory(deployment=deployment, approvals_required=2)
    approval = QuorumApproval.objects.create(action=action, actor=reviewer.user, number=1)
    approval.number = 2
    with pytest.raises(ValueError, match="QuorumApproval rows are immutable"):
        approval.save()
    with pytest.raises(ValueError, match="immutable"):
        approval.delete()
    assert QuorumApproval.objects.get(pk=approval.pk).number == 1
