"""Browser endpoint of blind review: `POST /actions/<id>/blind` (reviewers and up)."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from deployments.errors import DomainError
from deployments.models import Member
from deployments.permissions import role_required
from reviews import selectors
from reviews.humans.answers import answer_payload_parse
from reviews.humans.blind import blind_answer_record
from reviews.views import _refused, _render_detail  # the action page's own rendering


@role_required(Member.Role.REVIEWER)
@require_POST
def blind_answer(request: HttpRequest, action_id: int) -> HttpResponse:
    """POST decision=approve with payload (the JSON object you would approve), or
    decision=reject with a reason: your own answer to a blind sample, before its proposal
    is shown. Answers the action page, now with the proposal revealed (or the reason
    nothing was stored)."""
    action = selectors.action_get_visible(member=request.member, action_id=action_id)
    decision = request.POST.get("decision", "approve")
    raw = request.POST.get("payload", "")
    reason = request.POST.get("reason", "").strip()
    form = {"payload": raw[:65536], "reason": reason[:2000]}
    try:
        payload = answer_payload_parse(raw) if decision == "approve" else None
        if decision == "reject" and not reason:
            return _render_detail(request, action, status=422, error="Say why you would reject it.", form=form)
        blind_answer_record(action_id=action.pk, actor=request.user, decision=decision, payload=payload, reason=reason)
    except DomainError as exc:
        return _refused(request, action.pk, exc, form=form)
    action.refresh_from_db()
    notice = "Your answer is recorded. The AI's proposal is shown now: decide as usual."
    return _render_detail(request, action, notice=notice)
