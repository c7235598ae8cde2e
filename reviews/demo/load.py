"""Load the demo history and put each deployment's stage timeline in place."""

from datetime import timedelta

from django.utils import timezone

from deployments.models import AuditEvent, Deployment
from reviews.demo.history import STORIES, HistoryBuilder


def load_history(*, deployments: dict[str, Deployment], reviewers: list, seniors: list, days: int, seed: int) -> dict:
    """Write `days` of history for the four demo deployments. Call once, on an empty demo."""
    summary = HistoryBuilder(deployments=deployments, reviewers=reviewers, seniors=seniors, seed=seed).build(days=days)
    now = timezone.now()
    for story in STORIES:
        deployment = deployments[story.slug]
        entered_days_ago, _stage = story.timeline[-1]
        Deployment.objects.filter(pk=deployment.pk).update(
            stage_entered_at=now - timedelta(days=entered_days_ago), created_at=now - timedelta(days=days)
        )
        previous = story.timeline[0][1]
        for days_ago, stage in story.timeline[1:]:
            AuditEvent.objects.create(
                verb="deployments.stage.promoted",
                actor_label="admin",
                deployment=deployment,
                object_type="deployments.deployment",
                object_id=str(deployment.pk),
                reason=f"Gate passed for {previous} → {stage}; approved by admin2.",
                data={"from": previous.value, "to": stage.value, "approved_by": "admin2"},
                created_at=now - timedelta(days=days_ago),
            )
            previous = stage
    return summary
