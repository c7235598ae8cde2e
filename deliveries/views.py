"""Admin pages of the webhook outbox: recent deliveries (failures first), their attempts,
one-click redeliver, and signing-secret rotation."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from deliveries.models import Delivery
from deliveries.selectors import delivery_counts_by_deployment, delivery_get, delivery_list
from deliveries.services import delivery_redeliver, deployment_webhook_secret_rotate
from deployments.errors import DomainError
from deployments.models import Deployment, Member
from deployments.permissions import deployments_visible_to, role_required


def _list_url(slug: str | None) -> str:
    url = reverse("deliveries:list")
    return f"{url}?deployment={slug}" if slug else url


@role_required(Member.Role.ADMIN)
def delivery_list_view(request: HttpRequest) -> HttpResponse:
    deployments = list(deployments_visible_to(request.member).order_by("slug"))
    slug = request.GET.get("deployment") or None
    selected = next((d for d in deployments if d.slug == slug), None)
    if slug and selected is None:
        messages.error(request, f"No deployment {slug!r}; showing all deployments.")
    counts = delivery_counts_by_deployment()
    empty = {"pending": 0, "delivered": 0, "failed": 0}
    rows = [(d, counts.get(d.pk, empty)) for d in deployments]
    context = {
        "rows": rows,
        "selected": selected,
        "deliveries": delivery_list(deployment=selected),
    }
    return render(request, "deliveries/list.html", context)


@role_required(Member.Role.ADMIN)
def delivery_detail_view(request: HttpRequest, delivery_id: int) -> HttpResponse:
    try:
        delivery = delivery_get(delivery_id=delivery_id)
    except Delivery.DoesNotExist:
        raise Http404("no such delivery") from None
    return render(request, "deliveries/detail.html", {"delivery": delivery})


@require_POST
@role_required(Member.Role.ADMIN)
def delivery_redeliver_view(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("deployment"), pk=delivery_id)
    try:
        delivery_redeliver(delivery_id=delivery.pk, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Delivery {delivery.webhook_id} queued again (same webhook-id).")
    if request.POST.get("next") == "detail":
        return redirect("deliveries:detail", delivery_id=delivery.pk)
    return redirect(_list_url(request.POST.get("deployment") or None))


@require_POST
@role_required(Member.Role.ADMIN)
def webhook_secret_rotate_view(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = get_object_or_404(Deployment, slug=slug)
    try:
        deployment_webhook_secret_rotate(deployment_id=deployment.pk, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request,
            f"{deployment.slug} has a new signing secret. The previous one also signs deliveries for 24 hours.",
        )
    return redirect(_list_url(deployment.slug))
