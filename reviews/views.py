"""Browser pages of the review queues (SPEC §6): queues, action detail, decisions, claims.

Thin: read through reviews.selectors, write through one reviews.services call, render a page
or, for htmx requests, a partial. Domain errors become a message, never a 500.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url

from core.jsonlimits import JsonProblem, json_check, json_display, json_parse
from deployments.errors import DomainError, InvalidTransition, NotAllowed
from deployments.models import Member
from deployments.permissions import member_reach, queue_required, role_required
from reviews import runs, selectors
from reviews.claims import (
    claim_is_live,
    claim_until,
    proposed_action_claim,
    proposed_action_claim_next,
    proposed_action_release,
)
from reviews.execution import proposed_action_reconcile
from reviews.humans.selectors import humans_context, sample_notice
from reviews.models import ProposedAction
from reviews.quorum import EDIT_REFUSED, quorum_approvers
from reviews.services import proposed_action_audit_verdict, proposed_action_decide_and_claim_next
from reviews.state import item_state

QUEUE_URLS = {"review": "reviews:queue", "senior": "reviews:senior_queue", "audit": "reviews:audit_queue"}
QUEUE_TITLES = {"review": "Reviewer queue", "senior": "Senior queue", "audit": "Audit queue"}
HOME_BY_ROLE = {Member.Role.SENIOR: "reviews:senior_queue", Member.Role.ADMIN: "deployments:list"}


@dataclass(frozen=True)
class Choice:
    """One button of an item's decision panel (reviews/action_detail.html#choice_form): its
    form posts `field`=`value` (ids `<id>-form`, `<id>-button`); `key` is the shortcut shown,
    `shortcut` the data-shortcut of the button, or of the required reason field when there is
    one (`reason` is that field's label)."""

    id: str
    field: str
    value: str
    label: str
    key: str
    shortcut: str
    css: str = ""
    reason: str = ""
    reason_id: str = ""

    @property
    def form_id(self) -> str:
        return f"{self.id}-form"

    @property
    def button_id(self) -> str:
        return f"{self.id}-button"


def _decision(value: str, label: str, key: str, **more: str) -> Choice:
    return Choice(id=value, field="decision", value=value, label=label, key=key, shortcut=value, **more)


def _verdict(value: str, label: str, key: str, **more: str) -> Choice:
    return Choice(id=f"audit-{value}", field="verdict", value=value, label=label, key=key, **more)


DECIDE_CHOICES = (
    _decision("approve", "Approve", "a", css="primary"),
    _decision("reject", "Reject", "r", css="danger", reason="Reason to reject", reason_id="reject-reason"),
)
ESCALATE_CHOICE = _decision("escalate", "Escalate", "e", reason="Reason to escalate", reason_id="escalate-reason")
AUDIT_CHOICES = (  # the audit queue's keys are the reviewer queue's: a correct, r incorrect
    _verdict("correct", "Correct", "a", shortcut="approve", css="primary"),
    _verdict(
        "incorrect",
        "Incorrect",
        "r",
        shortcut="reject",
        css="danger",
        reason="What was wrong",
        reason_id="audit-reason",
    ),
)
DONE = {"approve": "Approved", "reject": "Rejected", "escalate": "Escalated to the senior queue"}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Members land where their day starts: seniors on the senior queue, admins on the
    deployments, reviewers on the reviewer queue; people without a role see how to get one."""
    member = Member.objects.filter(user=request.user).first()
    if member is None:
        return render(request, "home.html")
    return redirect(HOME_BY_ROLE.get(member.role, "reviews:queue"))


def _int_or_none(raw: str | None) -> int | None:
    """A positive 64-bit id from a query parameter, or None (ignored) for anything else."""
    try:
        value = int(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and 0 < value < 2**63 else None


def _may_work(member: Member, queue: str | None) -> bool:
    """Whether the member works `queue` (somewhere): the reviewer queue always; the senior and
    audit queues as a senior, or through a delegation from one (read only for a reviewer)."""
    if queue == "review":
        return True
    return queue in selectors.SENIOR_QUEUES and (member.is_senior or member_reach(member).works(queue))


def _may_work_item(member: Member, action: ProposedAction, queue: str | None) -> bool:
    """Whether the member works `queue` of this item's deployment (deployments.permissions:
    their own rights or a delegation's). No query for the reviewer queue (the item is visible,
    so it is theirs or handed to them) nor for admins; the senior and audit queues read the reach."""
    if queue is None or not _may_work(member, queue):
        return False
    if queue == "review" or member.is_admin:
        return True
    try:
        member_reach(member).acting_for(action.deployment_id, queue)
    except NotAllowed:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Queues
# ---------------------------------------------------------------------------------------


def _queue(request: HttpRequest, queue: str) -> HttpResponse:
    deployment_id = _int_or_none(request.GET.get("deployment"))
    action_type = request.GET.get("action_type", "").strip()[:100]
    page = selectors.queue_page(
        member=request.member,
        queue=queue,
        deployment_id=deployment_id,
        action_type=action_type,
        cursor=request.GET.get("after", ""),
    )
    context = {
        "queue": queue,
        "title": QUEUE_TITLES[queue],
        "page": page,
        "deployment_id": deployment_id,
        "action_type": action_type,
        "first_page": not request.GET.get("after"),
        "now": timezone.now(),
        "claim_timeout_minutes": int(settings.REVIEW_CLAIM_TIMEOUT.total_seconds() // 60),
    }
    template = "reviews/queue.html"
    if request.htmx and request.htmx.target == "queue-rows":
        template += "#rows"
    return render(request, template, context)


def _queue_page(name: str) -> Callable[[HttpRequest], HttpResponse]:
    """The page of queue `name`: the reviewer queue for every member; the senior and audit
    queues for seniors and a senior's delegate (deployments.permissions.queue_required)."""

    @require_GET
    def page(request: HttpRequest) -> HttpResponse:
        return _queue(request, name)

    page.__name__ = page.__qualname__ = f"{name}_queue"
    return role_required(Member.Role.REVIEWER)(page) if name == "review" else queue_required(name)(page)


queue = _queue_page("review")
senior_queue = _queue_page("senior")
audit_queue = _queue_page("audit")


@role_required(Member.Role.REVIEWER)
@require_GET
def nav_counts(request: HttpRequest) -> HttpResponse:
    """The queue counts of the nav, as htmx out-of-band swaps (polled)."""
    counts = selectors.queue_counts(member=request.member)
    return render(request, "partials/nav_counts.html", {"counts": counts, "cap": selectors.COUNT_CAP})


@role_required(Member.Role.REVIEWER)
@require_POST
def claim_next(request: HttpRequest) -> HttpResponse:
    """Claim the oldest unclaimed item of a queue and open it."""
    queue = request.POST.get("queue", "review")
    if queue not in selectors.QUEUES:
        messages.error(request, "Unknown queue.")
        return redirect("reviews:queue")
    if not _may_work(request.member, queue):
        raise PermissionDenied("only senior reviewers may work this queue")
    skip = _int_or_none(request.POST.get("skip"))  # from an item page: the next one, not this again
    action = proposed_action_claim_next(
        actor=request.user,
        queue=queue,
        deployment_id=_int_or_none(request.POST.get("deployment")),
        action_type=request.POST.get("action_type", "").strip()[:100],
        skip_ids=[skip] if skip else [],
        member=request.member,
    )
    if action is None:
        messages.info(request, "Nothing left to claim in this queue.")
        return redirect(QUEUE_URLS[queue])
    return redirect("reviews:action_detail", action_id=action.pk)


# ---------------------------------------------------------------------------------------
# One action
# ---------------------------------------------------------------------------------------


def _continue_queue(member: Member, action: ProposedAction, queue: str | None) -> str:
    """The queue `n` continues in from this item: its own, or the one it was in."""
    if queue is not None:
        return queue
    if action.audit_sample:
        return "audit"
    return "senior" if action.route == "senior" and member.is_senior else "review"


def _state_context(request: HttpRequest, action: ProposedAction) -> dict:
    """What the item's live state line needs (polled every 5 s: no neighbours, no history)."""
    member = request.member
    queue = action.queue
    may_work = _may_work_item(member, action, queue)
    continue_queue = _continue_queue(member, action, queue)
    live_claim = claim_is_live(action, timezone.now())
    return {
        "action": action,
        "queue": queue,
        "may_work": may_work,
        "claimed_by_me": live_claim and action.claimed_by_id == request.user.pk,
        "claimed_by_other": live_claim and action.claimed_by_id != request.user.pk,
        "claim_until": claim_until(action) if live_claim else None,
        "state": item_state(action, user=request.user, queue=queue if may_work else None),
        "continue_queue": continue_queue,
        "may_continue": _may_work(member, continue_queue),
    }


def _detail_context(request: HttpRequest, action: ProposedAction, **extra) -> dict:
    context = _state_context(request, action)
    member, queue, may_work = request.member, context["queue"], context["may_work"]
    previous = following = None
    if may_work:
        previous, following = selectors.action_neighbours(action=action, member=member, queue=queue)
    context.update(
        {
            "queue_title": QUEUE_TITLES.get(queue or "", ""),
            "queue_url": reverse(QUEUE_URLS[queue]) if may_work else reverse("reviews:queue"),
            "can_decide": may_work and queue in ("review", "senior"),
            "can_escalate": may_work and queue == "review",
            "can_audit": may_work and queue == "audit",
            "decide_choices": DECIDE_CHOICES,
            "escalate_choice": ESCALATE_CHOICE,
            "audit_choices": AUDIT_CHOICES,
            "previous": previous,
            "following": following,
            "history": (history := selectors.action_history(action)),
            # Why the action is where it is, as recorded when it was proposed (deployments.rules.route_why).
            "route_why": next((h.detail["why"] for h in history if "why" in (h.detail or {})), None),
            # The editor shows the keys in the payload's own order (as the page above shows them).
            "payload_json": json_display(action.payload, sort_keys=False),
            "final_payload_changed": action.final_payload is not None and action.final_payload != action.payload,
            # Issue 15: runs, parents, held and unknown actions.
            "children": list(action.children.order_by("pk")[:50]) if action.has_children else [],
            "held_reason": runs.blocked_reason(action) if action.status == ProposedAction.Status.HELD else "",
            "can_reconcile": member is not None and member.is_admin and action.status == ProposedAction.Status.UNKNOWN,
            "quorum_approvers": quorum_approvers(action),  # no query unless it needs several and has some
        }
    )
    context.update(humans_context(action, request.user))
    context.update(extra)
    return context


def _render_detail(request: HttpRequest, action: ProposedAction, *, status: int = 200, **extra) -> HttpResponse:
    if request.htmx and request.GET.get("part") == "state":
        return render(request, "reviews/action_detail.html#state", _state_context(request, action))
    context = _detail_context(request, action, **extra)
    # A blind sample before its answer has a page of its own, without the AI's proposal.
    template = "reviews/action_blind.html" if context["blind"] else "reviews/action_detail.html"
    if request.htmx:
        template += "#panel"
    return render(request, template, context, status=status)


@role_required(Member.Role.REVIEWER)
@require_GET
def action_detail(request: HttpRequest, action_id: int) -> HttpResponse:
    action = selectors.action_get_visible(member=request.member, action_id=action_id)
    return _render_detail(request, action)


def _refused(request: HttpRequest, action_id: int, error: DomainError, **extra) -> HttpResponse:
    """Re-show the item (as it is now) with the reason nothing was changed."""
    action = selectors.action_get_visible(member=request.member, action_id=action_id)
    queue = action.queue
    if isinstance(error, InvalidTransition) and queue is None:
        # Closed: who did what when, said once (the error's own detail would repeat the status).
        state = item_state(action, user=request.user, queue=queue if _may_work(request.member, queue) else None)
        detail = f"Nothing was changed: {state.text[:1].lower()}{state.text[1:]}."
        extra["refused"] = True  # the live state line says it, in place of the item's state
    else:
        detail = f"Nothing was changed: {error.detail}"
    return _render_detail(request, action, status=error.http_status, error=detail, **extra)


def _next_item(request: HttpRequest, queue: str | None, notice: str) -> HttpResponse:
    """After a decision in the Review-next flow: claim and show the next item of the same queue."""
    action = None
    if queue and _may_work(request.member, queue):
        action = proposed_action_claim_next(actor=request.user, queue=queue, member=request.member)
    return _show_next(request, queue, action, notice)


def _show_decided(request: HttpRequest, action_id: int, notice: str) -> HttpResponse:
    """After a decision outside the flow (a direct link): the same item, now decided, says so
    and offers `n`; nothing is claimed."""
    if request.htmx:
        action = selectors.action_get_visible(member=request.member, action_id=action_id)
        return _render_detail(request, action, notice=notice)
    messages.success(request, notice)
    return redirect("reviews:action_detail", action_id=action_id)


def _show_next(request: HttpRequest, queue: str | None, action: ProposedAction | None, notice: str) -> HttpResponse:
    """Show the next item, claimed (htmx: a partial and a pushed URL; otherwise a redirect),
    or go back to the queue when it is empty."""
    queue_url = reverse(QUEUE_URLS[queue]) if queue and _may_work(request.member, queue) else reverse("reviews:queue")
    if action is None:
        messages.success(request, f"{notice} That was the last item.")
        if request.htmx:
            # 204: htmx follows HX-Redirect without swapping anything first.
            return HttpResponseClientRedirect(queue_url, status=204)
        return redirect(queue_url)
    if request.htmx:
        response = _render_detail(request, action, notice=notice)
        return push_url(response, reverse("reviews:action_detail", args=[action.pk]))
    messages.success(request, notice)
    return redirect("reviews:action_detail", action_id=action.pk)


@role_required(Member.Role.REVIEWER)
@require_POST
def decide(request: HttpRequest, action_id: int) -> HttpResponse:
    """POST decision=approve|reject|escalate, reason, optional payload (edited JSON).

    An edited payload is validated and its diff shown for confirmation (confirm=1) first. The
    action is read here only to show it (a refusal, an edit to confirm): the decision itself
    locks and reads it once, and refuses what this member may not see (then shown as a 404)."""
    decision = request.POST.get("decision", "")
    reason = request.POST.get("reason", "").strip()
    raw_payload = request.POST.get("payload", "").strip()
    form = {"reason": reason, "payload": raw_payload, "decision": decision}

    def visible() -> ProposedAction:
        return selectors.action_get_visible(member=request.member, action_id=action_id)

    if decision not in DONE:
        return _render_detail(request, visible(), status=422, error="Choose approve, reject or escalate.", form=form)
    if decision in ("reject", "escalate") and not reason:
        return _render_detail(request, visible(), status=422, error=f"A reason is required to {decision}.", form=form)
    payload = None
    if raw_payload:
        action = visible()
        try:
            payload = json_parse(raw_payload)
            json_check(payload, field="payload")
        except JsonProblem as problem:
            error = f"The edited payload is refused: {problem.field} {problem.message}."
            return _render_detail(request, action, status=422, error=error, form=form, field_error=True)
        except json.JSONDecodeError as exc:
            error = f"The edited payload is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            return _render_detail(request, action, status=422, error=error, form=form, field_error=True)
        except ValueError as exc:  # NaN, Infinity
            error = f"The edited payload: {exc}."
            return _render_detail(request, action, status=422, error=error, form=form, field_error=True)
        if not isinstance(payload, dict):
            error = "The edited payload must be a JSON object."
            return _render_detail(request, action, status=422, error=error, form=form, field_error=True)
        if decision != "approve":
            return _render_detail(
                request, action, status=422, error="An edited payload can only be approved.", form=form
            )
        if payload == action.payload:
            payload = None
        elif action.approvals_required > 1:  # reviews/quorum.py: one payload, N approvals
            error = "Nothing was changed: " + EDIT_REFUSED.format(n=action.approvals_required) + "."
            return _render_detail(request, action, status=422, error=error, form=form)
        elif request.POST.get("confirm") != "1":
            template = "reviews/confirm_edit.html" + ("#confirm" if request.htmx else "")
            context = {
                "action": action,
                "diff": selectors.payload_diff(action.payload, payload),
                "payload": json.dumps(payload, ensure_ascii=False),
                "reason": reason,
            }
            return render(request, template, context)
    try:
        decided = proposed_action_decide_and_claim_next(
            action_id=action_id,
            actor=request.user,
            member=request.member,
            decision=decision,
            reason=reason,
            payload=payload,
        )
    except DomainError as exc:
        return _refused(request, action_id, exc, form=form)
    action = decided.action
    done = DONE[decision] + (" with your edits" if payload is not None else "")
    notice = sample_notice(action=action, queue=decided.queue) or f"{done}: #{action.pk} {action.action_type}."
    if decision == "approve" and action.is_pending and action.quorum_label:
        notice = f"Your approval is recorded: #{action.pk} has {action.quorum_label}; it waits for another approver."
    if not decided.in_flow:
        return _show_decided(request, action.pk, notice)
    return _show_next(request, decided.queue, decided.following, notice)


@queue_required("audit")
@require_POST
def audit_verdict(request: HttpRequest, action_id: int) -> HttpResponse:
    """POST verdict=correct|incorrect, reason: a senior's verdict on an audit sample."""
    action = selectors.action_get_visible(member=request.member, action_id=action_id)
    in_flow = action.claimed_by_id == request.user.pk and claim_is_live(action, timezone.now())
    verdict = request.POST.get("verdict", "")
    reason = request.POST.get("reason", "").strip()
    try:
        proposed_action_audit_verdict(
            action_id=action.pk, actor=request.user, verdict=verdict, reason=reason, member=request.member
        )
    except DomainError as exc:
        return _refused(request, action.pk, exc, form={"reason": reason, "decision": verdict})
    notice = f"Audit verdict “{verdict}” recorded: #{action.pk} {action.action_type}."
    return _next_item(request, "audit", notice) if in_flow else _show_decided(request, action.pk, notice)


@role_required(Member.Role.REVIEWER)
@require_POST
def claim(request: HttpRequest, action_id: int) -> HttpResponse:
    action = selectors.action_get_visible(member=request.member, action_id=action_id)
    try:
        proposed_action_claim(action_id=action.pk, actor=request.user, member=request.member)
    except DomainError as exc:
        messages.error(request, f"Not claimed: {exc.detail}")
    return redirect("reviews:action_detail", action_id=action.pk)


@role_required(Member.Role.REVIEWER)
@require_POST
def release(request: HttpRequest, action_id: int) -> HttpResponse:
    """Give back your claim. `quiet=1` (the page's beacon as you leave an item): 204, no message."""
    action = selectors.action_get_visible(member=request.member, action_id=action_id)
    proposed_action_release(action_id=action.pk, actor=request.user)
    if request.POST.get("quiet") == "1":
        return HttpResponse(status=204)
    messages.info(request, f"Released #{action.pk}; others may take it now.")
    queue = action.queue
    return redirect(QUEUE_URLS[queue] if _may_work(request.member, queue) else "reviews:queue")


@role_required(Member.Role.ADMIN)
@require_POST
def reconcile(request: HttpRequest, action_id: int) -> HttpResponse:
    """POST committed=1|0, reason: an admin settles an unknown execution result (issue 15)."""
    action = selectors.action_get_visible(member=request.member, action_id=action_id)
    reason = request.POST.get("reason", "").strip()
    committed = request.POST.get("committed", "")
    if committed not in ("0", "1"):
        return _render_detail(request, action, status=422, error="Choose committed or not committed.")
    try:
        proposed_action_reconcile(action_id=action.pk, committed=committed == "1", actor=request.user, reason=reason)
    except DomainError as exc:
        return _refused(request, action.pk, exc, form={"reason": reason})
    what = "committed: recorded as executed" if committed == "1" else "not committed: open for one more execution"
    messages.success(request, f"Reconciled #{action.pk} as {what}.")
    return redirect("reviews:action_detail", action_id=action.pk)
