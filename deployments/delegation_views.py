"""The out-of-office page, `/account/away/` (every member; admins for anyone): hand your
queues to another member for a period, see who covers for whom, cancel (deployments.delegations)."""

from datetime import UTC, datetime

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from deployments.delegations import MAX_DAYS, MAX_NOTE, delegation_cancel, delegation_create, delegations_listed
from deployments.errors import DomainError
from deployments.models import Delegation, Member
from deployments.permissions import role_required

FIELDS = ("delegator", "delegate", "starts_at", "ends_at", "note")


def _member_id(raw: str) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63 else None


def _moment(raw: str, what: str) -> datetime:
    """A `datetime-local` value (or ISO 8601) as an aware datetime in UTC; a naive one is UTC."""
    raw = (raw or "").strip()
    try:
        if not raw or len(raw) > 40 or not raw.isascii():
            raise ValueError
        moment = datetime.fromisoformat(raw)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"the {what} must be a date and time such as 2026-12-24T09:00") from None


def _page(request: HttpRequest, *, form: dict, error: str = "", status: int = 200) -> HttpResponse:
    member = request.member
    people = Member.objects.select_related("user").order_by("user__username")
    context = {
        "lists": delegations_listed(member=member),
        "people": [p for p in people if p.pk != member.pk or member.is_admin],
        "form": form,
        "error": error,
        "max_days": MAX_DAYS,
        "max_note": MAX_NOTE,
        "now": timezone.now(),
    }
    return render(request, "deployments/away.html", context, status=status)


@role_required(Member.Role.REVIEWER)
@require_http_methods(["GET", "POST"])
def away(request: HttpRequest) -> HttpResponse:
    """GET: the page. POST delegate, starts_at, ends_at, note (and, for admins, delegator):
    create a delegation; a refusal is a message on the page (422), nothing stored."""
    member = request.member
    if request.method == "GET":
        return _page(request, form={"delegator": str(member.pk)})
    form = {name: request.POST.get(name, "")[:1000] for name in FIELDS}
    # Yourself unless you name someone (admins only: the service refuses anyone else).
    delegator_id = _member_id(form["delegator"]) if form["delegator"].strip() else member.pk
    delegate_id = _member_id(form["delegate"])
    try:
        if delegator_id is None:
            raise ValueError("choose the member who is away")
        if delegate_id is None:
            raise ValueError("choose the member who covers")
        starts_at = _moment(form["starts_at"], "start")
        ends_at = _moment(form["ends_at"], "end")
        delegation = delegation_create(
            actor=request.user,
            delegator_id=delegator_id,
            delegate_id=delegate_id,
            starts_at=starts_at,
            ends_at=ends_at,
            note=request.POST.get("note", ""),
        )
    except ValueError as exc:
        return _page(request, form=form, error=f"Nothing was saved: {exc}.", status=422)
    except DomainError as exc:
        return _page(request, form=form, error=f"Nothing was saved: {exc.detail}.", status=exc.http_status)
    messages.success(
        request,
        f"{delegation.delegate.user.get_username()} covers the queues of "
        f"{delegation.delegator.user.get_username()} from {delegation.starts_at:%Y-%m-%d %H:%M} "
        f"to {delegation.ends_at:%Y-%m-%d %H:%M} UTC.",
    )
    return redirect("deployments:away")


@role_required(Member.Role.REVIEWER)
@require_POST
def away_cancel(request: HttpRequest, delegation_id: int) -> HttpResponse:
    """Cancel a delegation (its delegator, or an admin); anyone else's is a 404."""
    mine = Delegation.objects.filter(pk=delegation_id)
    if not request.member.is_admin:
        mine = mine.filter(delegator=request.member)
    if not mine.exists():
        raise Http404("no such delegation of yours")
    try:
        delegation_cancel(actor=request.user, delegation_id=delegation_id)
    except DomainError as exc:
        messages.error(request, f"Not cancelled: {exc.detail}")
    else:
        messages.success(request, "Delegation cancelled.")
    return redirect("deployments:away")
