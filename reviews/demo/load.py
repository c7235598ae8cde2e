"""Load the demo history and put each deployment's stage timeline in place."""

from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth import get_user_model

from deployments.gate import gate_evaluate
from deployments.models import AuditEvent, Deployment, PromotionRequest
from deployments.services import audit_event_build, new_webhook_secret
from reviews.demo.history import STORIES, HistoryBuilder


def demo_deployment_create(*, slug: str, name: str, stage: str) -> Deployment:
    """A demo deployment, without the creation event that `load_history` writes at its birth."""
    deployment = Deployment(slug=slug, name=name, stage=stage, webhook_secret=new_webhook_secret())
    deployment.full_clean()
    deployment.save()
    return deployment


def load_history(
    *,
    deployments: dict[str, Deployment],
    reviewers: list,
    seniors: list,
    days: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write `days` of history for the four demo deployments. Call once, on an empty demo.

    Guarantees a consistent story: nothing is dated in the future, and each deployment's
    `deployments.deployment.created` event comes before everything else of it."""
    builder = HistoryBuilder(deployments=deployments, reviewers=reviewers, seniors=seniors, seed=seed)
    summary = builder.build(days=days, progress=progress)
    now = builder.now
    for story in STORIES:
        deployment = deployments[story.slug]
        entered_days_ago, _stage = story.timeline[-1]
        # Before the history's first day and before its first stage change, whichever is older.
        born = now - timedelta(days=max(days, story.timeline[0][0]) + 1)
        Deployment.objects.filter(pk=deployment.pk).update(
            stage_entered_at=now - timedelta(days=entered_days_ago), created_at=born
        )
        # The audit log is append-only: the creation event is written here, dated at the birth
        # (deployment_create would date it now, after everything of the history).
        created = audit_event_build(
            verb="deployments.deployment.created",
            actor_label="load_demo",
            deployment=deployment,
            obj=deployment,
            data={"stage": story.timeline[0][1].value, "started_above_shadow": False},
        )
        created.created_at = born
        created.save()
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
    _promotion_waiting_and_a_breaker_trip(deployments=deployments, now=now)
    return summary


def _promotion_waiting_and_a_breaker_trip(*, deployments: dict[str, Deployment], now) -> None:
    """Refunds: a promotion to supervised requested by `admin`, waiting for a second admin.
    Invoice matching: a breaker trip nine days ago (failure spike after a release), reset a day later."""
    admin = get_user_model().objects.get(username="admin")
    refunds = Deployment.objects.get(pk=deployments["refunds"].pk)
    evidence = gate_evaluate(deployment=refunds).as_dict()
    request = PromotionRequest.objects.create(
        deployment=refunds,
        from_stage="approval",
        to_stage="supervised",
        requested_by=admin,
        requested_at=now - timedelta(hours=20),
        request_reason="30 days of approvals; the counterfactual looks clean. Second pair of eyes, please.",
        evidence=evidence,
    )
    AuditEvent.objects.create(
        verb="deployments.promotion.requested",
        actor=admin,
        actor_label="admin",
        deployment=refunds,
        object_type="deployments.promotionrequest",
        object_id=str(request.pk),
        reason=request.request_reason,
        data={"from": "approval", "to": "supervised", "outcome": evidence.get("outcome")},
        created_at=request.requested_at,
    )
    invoices = deployments["invoice-matching"]
    for verb, days_ago, reason, actor in [
        ("deployments.breaker.tripped", 9, "execution failure rate 7.9% over 1 h (limit 5%), n=76", None),
        ("deployments.breaker.reset", 8, "Supplier API outage fixed; failures back to normal.", admin),
    ]:
        AuditEvent.objects.create(
            verb=verb,
            actor=actor,
            actor_label=actor.get_username() if actor else "system",
            deployment=invoices,
            object_type="deployments.deployment",
            object_id=str(invoices.pk),
            reason=reason,
            created_at=now - timedelta(days=days_ago),
        )
