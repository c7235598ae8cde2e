"""Reads that pages and the API need."""

from django.http import Http404

from deployments.models import Deployment
from reviews.models import ProposedAction


def action_get_for_deployment(*, deployment: Deployment, action_id: int) -> ProposedAction:
    """One action of this deployment; 404 for any other deployment's action (no oracle)."""
    action = ProposedAction.objects.filter(pk=action_id, deployment=deployment).first()
    if action is None:
        raise Http404(f"no action {action_id} in this deployment")
    action.deployment = deployment
    return action
