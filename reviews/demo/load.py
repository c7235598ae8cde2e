"""Load the demo history and put each deployment's stage timeline in place."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from deployments.gate import gate_evaluate
from deployments.models import AuditEvent, Deployment, PromotionRequest
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
