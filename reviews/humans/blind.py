"""Blind review samples (issue 17 item 1): at stage 2 a share of reviewed actions
(`Deployment.blind_review_rate`) is shown to its reviewer without the AI's proposal — its
payload, rationale and confidence hidden, the payload fields the deployment marks as inputs
(`blind_input_fields`) shown. The reviewer first records their own answer (the payload they
would approve, or a rejection), which is stored and never changed; then the proposal is
revealed and they decide as usual.

Blind agreement — the answer against the proposal under the deployment's comparison rules —
is evidence (`blind.agree` / `blind.disagree`, counted on the day of the answer), shown on the
gate page and in the evidence API beside approved-unchanged; the 2→3 gate can require it
(`min_blind_agreement`, deployments/gate_humans.py).
"""

from typing import Any, Unpack

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from deployments.counters import Metric
from deployments.errors import InvalidInput, InvalidTransition
from deployments.permissions import on_behalf_data
from deployments.reviewers import reviewer_counts_add
from deployments.services import audit_event_record, evidence_add
from reviews.humans.common import AnswerFields, action_lock, answers_compare, require_may_decide, seconds_since_start
from reviews.humans.models import BlindAnswer
from reviews.models import ProposedAction

BLIND = ProposedAction.Sample.BLIND
MAX_REASON = 2000


def blind_answer_required(action: ProposedAction) -> bool:
    """Whether `action` is a blind sample still waiting for its reviewer's own answer (one query
    for a blind sample, none otherwise)."""
    if action.review_sample != BLIND or not action.is_pending:
        return False
    return not BlindAnswer.objects.filter(action=action).exists()


def blind_answer_check(action: ProposedAction) -> None:
    """Refuse a decision on a blind sample before its blind answer is recorded. Caller holds
    the row lock; approve and reject call it (escalating is allowed: the item stays blind for
    the senior who takes it)."""
    if blind_answer_required(action):
        raise InvalidTransition(
            f"action {action.pk} is a blind sample: record your own answer first (POST /actions/{action.pk}/blind)"
        )


@transaction.atomic
def blind_answer_record(*, action_id: int, actor: AbstractBaseUser, **answer: Unpack[AnswerFields]) -> BlindAnswer:
    """Record `actor`'s own answer to a blind sample: `decision` "approve" with the `payload`
    they would approve (a JSON object, parsed by reviews.humans.answers), or "reject".

    Preconditions: the action is a pending blind sample without an answer; `actor` may decide
    it (and nobody else holds a live claim). Writes the answer, its `blind.*` counter (with
    the seconds it took) and the audit event in one transaction, under the action's row lock.
    A second answer raises InvalidTransition and changes nothing.
    """
    decision, payload, reason = answer["decision"], answer.get("payload"), answer.get("reason", "")
    if decision not in BlindAnswer.Decision.values:
        raise InvalidInput("decision must be 'approve' (with the payload you would approve) or 'reject'")
    if decision == BlindAnswer.Decision.APPROVE and not isinstance(payload, dict):
        raise InvalidInput("give the payload you would approve, as a JSON object")
    if decision == BlindAnswer.Decision.REJECT:
        payload = None
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidInput(f"the reason must be at most {MAX_REASON} characters, without NUL")
    action = action_lock(action_id)
    if action.review_sample != BLIND:
        raise InvalidTransition(f"action {action.pk} is not a blind sample")
    if not action.is_pending:
        raise InvalidTransition(f"action {action.pk} is {action.status}; blind answers are for pending samples")
    now = timezone.now()
    on_behalf_of = require_may_decide(action, actor, now)
    if BlindAnswer.objects.filter(action=action).exists():
        raise InvalidTransition(f"action {action.pk} already has its blind answer; it cannot be changed")
    result = answers_compare(action, action.payload, payload)
    seconds = seconds_since_start(action, actor, now)
    answer = BlindAnswer.objects.create(
        action=action,
        actor=actor,
        decision=decision,
        payload=payload,
        reason=reason,
        agree=result["agree"],
        diff=result["diff"],
        seconds_to_answer=seconds,
    )
    evidence_add(
        deployment_id=action.deployment_id,
        action_type=action.action_type,
        metric=Metric.BLIND_AGREE if answer.agree else Metric.BLIND_DISAGREE,
        total=seconds,
    )
    reviewer_counts_add(
        deployment_id=action.deployment_id,
        user_id=actor.pk,
        day=now.date(),
        metrics={Metric.BLIND_AGREE if answer.agree else Metric.BLIND_DISAGREE: (1, seconds)},
    )
    audit_event_record(
        verb="reviews.action.blind_answered",
        actor=actor,
        obj=action,
        reason=reason,
        data={"decision": decision, "agree": answer.agree, "differences": len(answer.diff)}
        | on_behalf_data(on_behalf_of),
    )
    return answer


def blind_inputs(action: ProposedAction) -> list[tuple[str, Any]]:
    """The payload fields the deployment marks as the item's inputs, shown on a blind sample:
    (path, value) in the deployment's order; a path the payload lacks shows as None."""
    shown = []
    for path in action.deployment.blind_input_fields or []:
        value: Any = action.payload
        for part in str(path).split("."):
            value = value.get(part) if isinstance(value, dict) else None
        shown.append((path, value))
    return shown
