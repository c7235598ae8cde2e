"""The demo loader writes a consistent story: counters agree with the rows they summarise."""

import pytest
from django.core.management import call_command
from django.db.models import Sum

from deployments.models import AuditEvent, Deployment, EvidenceCount, Member
from reviews.models import Decision, ProposedAction

pytestmark = pytest.mark.django_db


def total(metric_prefix: str, **filters) -> int:
    qs = EvidenceCount.objects.filter(metric__startswith=metric_prefix, **filters)
    return qs.aggregate(n=Sum("n"))["n"] or 0


def test_load_demo_tells_a_consistent_story(capsys):
    call_command("load_demo", "--days", "4")
    out = capsys.readouterr().out
    assert "reviewer-demo-pw" in out and "tl_" in out
    stages = dict(Deployment.objects.values_list("slug", "stage"))
    assert stages == {
        "support-triage": "shadow",
        "refunds": "approval",
        "invoice-matching": "supervised",
        "password-resets": "autonomous",
    }
    assert {m.role for m in Member.objects.all()} == {"reviewer", "senior", "admin"}
    actions = ProposedAction.objects.count()
    assert actions > 500
    assert total("proposed.") == actions
    for route in ("shadow", "auto", "review", "senior"):
        assert total(f"proposed.{route}") == ProposedAction.objects.filter(route=route).count()
    human = Decision.objects.exclude(verb__startswith="audit").count()
    assert total("decision.") == human
    assert total("shadow.") == ProposedAction.objects.filter(status="compared").count()
    executed = ProposedAction.objects.filter(status__in=["executed", "failed"]).count()
    assert total("execution.") == executed
    # Queues have something to show right now.
    assert ProposedAction.objects.pending().count() > 0
    assert AuditEvent.objects.filter(verb="deployments.stage.promoted").count() == 6
    from deployments.models import PromotionRequest

    waiting = PromotionRequest.objects.get(status="open")
    assert (waiting.deployment.slug, waiting.to_stage, waiting.requested_by.username) == (
        "refunds",
        "supervised",
        "admin",
    )
    assert waiting.evidence["criteria"]
    assert AuditEvent.objects.filter(verb="deployments.breaker.tripped").count() == 1
    # Issue 15's states, live: a held run, a waiting child, an unknown result, a cancellation.
    statuses = set(ProposedAction.objects.values_list("status", flat=True))
    assert {"held", "unknown", "cancelled"} <= statuses


def test_load_demo_again_keeps_the_history_and_prints_new_keys(capsys):
    call_command("load_demo", "--days", "2")
    before = ProposedAction.objects.count()
    first = capsys.readouterr().out
    call_command("load_demo", "--days", "2")
    second = capsys.readouterr().out
    assert ProposedAction.objects.count() == before
    key = [line.split()[-1] for line in first.splitlines() if line.strip().startswith("refunds")][0]
    assert key not in second
