"""Shadow report pages: evidence with charts, disagreements to adjudicate, rules and recompute.

Members see the deployments they are assigned to (admins all); any other slug is a 404.
Changing rules and starting a recompute are for admins.
"""

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from core.jsonlimits import JsonProblem, json_check, json_parse
from deployments.errors import DomainError
from deployments.models import Member
from deployments.permissions import deployment_visible_or_404, require_in_deployment, role_required
from reviews.shadow import charts, selectors, services
from reviews.shadow.models import ShadowAdjudication, ShadowRecompute

RULES_EXAMPLE = {
    "ignore": ["internal_note", "meta.trace_id"],
    "numeric_tolerance": 0,
    "field_tolerances": {"amount_cents": 100},
    "case_insensitive": ["reason", "customer.email"],
    "lists_as_sets": ["tags"],
}


def _require_admin(request: HttpRequest) -> None:
    if not request.member.is_admin:
        raise PermissionDenied("only admins may change comparison rules or start a recompute")


@role_required(Member.Role.REVIEWER)
def shadow_report(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    evidence = selectors.shadow_evidence(deployment_id=deployment.pk)
    context = {
        "deployment": deployment,
        "evidence": evidence,
        "timeline": charts.timeline_chart(evidence["by_day"]),
        "bars": charts.bars_chart(evidence["by_action_type"]),
        "recompute": selectors.shadow_recompute_latest(deployment_id=deployment.pk),
        "pending": selectors.shadow_pending_counts(deployment_id=deployment.pk),
        "outcome_sources": selectors.shadow_outcome_sources(deployment_id=deployment.pk),
    }
    return render(request, "shadow/report.html", context)


@role_required(Member.Role.REVIEWER)
def shadow_disagreements(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    try:
        before = int(request.GET.get("before") or 0) or None
    except ValueError:
        before = None
    open_only = request.GET.get("open") == "1"
    page_size = 25
    actions = selectors.shadow_disagreements(
        deployment_id=deployment.pk, before_id=before, open_only=open_only, limit=page_size + 1
    )
    more = len(actions) > page_size
    actions = actions[:page_size]
    context = {
        "deployment": deployment,
        "actions": actions,
        "open_only": open_only,
        "next_before": actions[-1].pk if more and actions else None,
        "verdicts": ShadowAdjudication.Verdict.choices,
    }
    return render(request, "shadow/disagreements.html", context)


@require_POST
@role_required(Member.Role.REVIEWER)
def shadow_adjudicate(request: HttpRequest, slug: str, action_id: int) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    require_in_deployment(deployment.actions, action_id, "action")
    try:
        adjudication = services.shadow_adjudicate(
            action_id=action_id,
            verdict=request.POST.get("verdict", ""),
            actor=request.user,
            reason=request.POST.get("reason", ""),
        )
        messages.success(request, f"Action #{action_id}: {adjudication.get_verdict_display()}.")
    except DomainError as exc:
        messages.error(request, str(exc.detail))
    back = reverse("shadow:disagreements", args=[deployment.slug])
    if request.POST.get("open") == "1":
        back += "?open=1"
    return redirect(back)


@require_http_methods(["GET", "POST"])
@role_required(Member.Role.REVIEWER)
def shadow_rules(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    text = json.dumps(deployment.comparison_rules or {}, indent=2)
    status = 200
    if request.method == "POST":
        _require_admin(request)
        text = request.POST.get("rules", "")
        try:
            rules = json_parse(text or "{}")
            json_check(rules, field="rules")
            _, recompute = services.comparison_rules_set(deployment_id=deployment.pk, rules=rules, actor=request.user)
        except JsonProblem as problem:
            messages.error(request, f"The rules are refused: {problem}")
            status = 422
        except ValueError as exc:  # not JSON (NaN and Infinity included)
            messages.error(request, f"The rules are not valid JSON: {exc}")
            status = 422
        except DomainError as exc:
            messages.error(request, str(exc.detail))
            status = 422 if exc.http_status == 422 else 409
        else:
            if recompute is None:
                messages.info(request, "The rules did not change.")
            else:
                messages.success(request, "Rules saved; every comparison is being recomputed.")
            return redirect("shadow:rules", slug=deployment.slug)
    context = {
        "deployment": deployment,
        "rules_text": text,
        "example": json.dumps(RULES_EXAMPLE, indent=2),
        "recompute": selectors.shadow_recompute_latest(deployment_id=deployment.pk),
    }
    return render(request, "shadow/rules.html", context, status=status)


@require_POST
@role_required(Member.Role.REVIEWER)
def shadow_recompute_start(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    _require_admin(request)
    try:
        services.shadow_recompute_start(deployment_id=deployment.pk, actor=request.user)
        messages.success(request, "Recompute started.")
    except DomainError as exc:
        messages.error(request, str(exc.detail))
    return redirect("shadow:rules", slug=deployment.slug)


@role_required(Member.Role.REVIEWER)
def shadow_recompute_progress(request: HttpRequest, slug: str, recompute_id: int) -> HttpResponse:
    """The progress bar alone; htmx polls it every second while the recompute runs."""
    deployment = deployment_visible_or_404(request, slug)
    recompute = get_object_or_404(ShadowRecompute, pk=recompute_id, deployment=deployment)
    return render(request, "shadow/rules.html#progress", {"deployment": deployment, "recompute": recompute})
