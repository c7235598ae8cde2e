"""Load the demo history and put each deployment's stage timeline in place."""

from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth import get_user_model

from deployments.gate import gate_evaluate
from deployments.models import AuditEvent, Deployment, PromotionRequest
from deployments.services import audit_event_build, new_webhook_secret
from reviews.demo.history import STORIES, HistoryBuilder
from reviews.execution import proposed_action_cancel, proposed_action_execution_claim, proposed_action_report_result
from reviews.services import Proposal, proposed_action_create


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
    _agent_boundary_examples(deployments=deployments)
    return summary


def _agent_boundary_examples(*, deployments: dict[str, Deployment]) -> None:
    """Issue 15, live, through the services (so counters and audit agree): a held run, a child
    waiting for its parent, an unknown result for an admin to reconcile, a cancelled action."""
    invoices, refunds = deployments["invoice-matching"], deployments["refunds"]

    def propose(deployment, action_type, payload, risk, **kw):
        proposal = Proposal(action_type=action_type, payload=payload, risk_score=risk, confidence=0.99)
        return proposed_action_create(deployment=deployment, proposal=proposal, actor_label="agent", **kw)

    run = {"run_id": "month-end-close-2026-11", "run_hold": True}
    propose(invoices, "invoice.match", {"invoice": "INV-9001", "po": "PO-88", "amount_cents": 4_250_000}, 0.55, **run)
    for n in (1, 2):
        propose(
            invoices,
            "invoice.match",
            {"invoice": f"INV-900{n + 1}", "po": f"PO-8{n}", "amount_cents": 1200},
            0.05,
            **run,
        )
    parent = propose(refunds, "refund.issue", {"order": "R-7001", "amount_cents": 15_000}, 0.2)
    propose(refunds, "refund.deny", {"order": "R-7001-dup", "reason": "duplicate"}, 0.1, parent_id=parent.pk)
    unknown = propose(invoices, "invoice.match", {"invoice": "INV-9010", "po": "PO-90", "amount_cents": 800}, 0.05)
    proposed_action_execution_claim(action_id=unknown.pk)
    proposed_action_report_result(
        action_id=unknown.pk,
        status="unknown",
        payload_hash=unknown.payload_sha256,
        error="ERP timed out after the request was sent",
    )
    cancelled = propose(refunds, "refund.issue", {"order": "R-7002", "amount_cents": 900}, 0.3)
    proposed_action_cancel(action_id=cancelled.pk, reason="the customer withdrew the request")


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
