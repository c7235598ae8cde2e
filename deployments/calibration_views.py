"""The calibration page (issue 16 item 4): members who see the deployment; read only."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from deployments import selectors
from deployments.calibration import calibration
from deployments.models import Member
from deployments.permissions import role_required
from deployments.policy import Thresholds
from deployments.simulator import simulate

CHART = 240  # the reliability chart's side in px


@require_GET
@role_required(Member.Role.REVIEWER)
def deployment_calibration(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = selectors.deployment_get_visible(member=request.member, slug=slug)
    if deployment is None:
        raise Http404("no such deployment among yours")
    action_type = request.GET.get("action_type", "").strip()[:100]
    result = calibration(deployment=deployment, action_type=action_type)
    points = [
        {
            "x": round(row["mean_confidence"] * CHART, 1),
            "y": round((1 - row["unchanged_rate"]) * CHART, 1),
            "y_low": round((1 - row["lower"]) * CHART, 1),
            "y_high": round((1 - row["upper"]) * CHART, 1),
            "row": row,
        }
        for row in result["bands"]
    ]
    replay = None
    candidate = result["candidate_auto_min_confidence"]
    if candidate is not None:
        current = deployment.thresholds
        replay = simulate(
            deployment=deployment,
            candidate=Thresholds(current.auto_max_risk, candidate, current.review_max_risk),
        )
    context = {"deployment": deployment, "cal": result, "points": points, "side": CHART, "replay": replay}
    return render(request, "deployments/calibration.html", context)
