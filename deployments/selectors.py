"""Reads of deployments for pages and the API."""

from django.db.models import QuerySet

from deployments.models import Deployment, Member


def deployments_visible_to(member: Member) -> QuerySet[Deployment]:
    """Admins see every deployment; others see the ones they are assigned to."""
    if member.is_admin:
        return Deployment.objects.all()
    return member.deployments.all()
