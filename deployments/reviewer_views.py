"""The reviewer-quality page, `/deployments/<slug>/reviewers/` (seniors and admins)."""

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from deployments.models import Member
from deployments.permissions import deployment_visible_or_404, role_required
from deployments.reviewers import reviewer_flags_for, reviewer_rows

WINDOWS = (7, 30, 90, 365)


@require_GET
@role_required(Member.Role.SENIOR)
def reviewer_quality(request: HttpRequest, slug: str) -> HttpResponse:
    """Per reviewer over the last `days` (7, 30, 90 or 365; default 30): decisions, time to
    decide, the share decided quickly, the longest approve streak, edit and reject rates,
    agreement with double-review partners and with the AI on blind answers, and flags."""
    deployment = deployment_visible_or_404(request, slug, queue="senior")
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        days = 30
    days = days if days in WINDOWS else 30
    since = (timezone.now() - timedelta(days=days - 1)).date()
    context = {
        "deployment": deployment,
        "rows": reviewer_rows(deployment=deployment, since=since),
        "limits": reviewer_flags_for(deployment),
        "days": days,
        "windows": WINDOWS,
        "since": since,
    }
    return render(request, "deployments/reviewers.html", context)
