from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from deployments.models import Member
from deployments.permissions import role_required
from deployments.selectors import deployments_visible_to


@role_required(Member.Role.REVIEWER)
def deployment_list(request: HttpRequest) -> HttpResponse:
    deployments = deployments_visible_to(request.member)
    return render(request, "deployments/list.html", {"deployments": deployments})
