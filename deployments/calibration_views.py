"""The calibration page (`/deployments/<slug>/calibration/`): who may see it is who may see
the gate page. Thin: one read (deployments.calibration), a chart per kind, the data as tables."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET

from deployments.calibration import DEFAULT_DAYS, MAX_DAYS, calibration_evaluate
from deployments.charts import reliability_svg
from deployments.models import Member
from deployments.permissions import deployment_visible_or_404, role_required


def _days(raw: str) -> int:
    """`?days=`: a whole number of days in [1, MAX_DAYS]; anything else is the default."""
    try:
        days = int(raw)
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return days if 1 <= days <= MAX_DAYS else DEFAULT_DAYS


def _simulate_url(slug: str, candidate: dict) -> str | None:
    """Where the candidate threshold is replayed: the settings page's simulator, once it exists."""
    if candidate["auto_min_confidence"] is None:
        return None
    try:
        url = reverse("deployments:settings", kwargs={"slug": slug})
    except NoReverseMatch:
        return None
    return f"{url}?auto_min_confidence={candidate['auto_min_confidence']}"


@require_GET
@role_required(Member.Role.REVIEWER)
def deployment_calibration(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    action_type = request.GET.get("action_type", "").strip()[:100]
    days = _days(request.GET.get("days", ""))
    calibration = calibration_evaluate(deployment=deployment, action_type=action_type, days=days)
    kinds = [
        {**summary, "chart": reliability_svg(bands=summary["bands"], title=f"{summary['label']} by confidence")}
        for summary in calibration["kinds"].values()
    ]
    context = {
        "deployment": deployment,
        "calibration": calibration,
        "kinds": kinds,
        "action_type": action_type,
        "days": days,
        "simulate_url": _simulate_url(deployment.slug, calibration["candidate"]),
    }
    return render(request, "deployments/calibration.html", context)
