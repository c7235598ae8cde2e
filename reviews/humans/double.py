"""Double review, a human baseline (issue 17 item 2): a share of the reviewer queue
(`Deployment.double_review_rate`) is decided by two people independently.

The first decision is a vote (`DoubleVote` round 1): the action stays pending, nothing is
executed, and nobody but the voter sees it. The second person (a different one) decides
without seeing it; their vote settles the pair:

- the two answers agree (comparison rules: both reject, or both approve payloads that
  match) → the second decision is carried out as usual (approve, edit or reject);
- they differ → the action moves to the senior queue, where a senior who cast neither vote
  decides, seeing both.

On the second vote, in its transaction, the counters of the baseline are written:
`double.hh.same|differ` (raw human–human agreement), `double.hh.<first>_<second>` (each vote
agreeing with the AI or changing it: the 2×2 table of Cohen's kappa, human–human) and, once
per vote, `double.ai.<auto|hold>_<agree|change>` (the AI's own call — would stage 3 have
auto-executed it — against the person's: the table of AI–human kappa). Formulas: docs/gate.md.
"""

from dataclasses import dataclass
from typing import Any, Unpack

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.updates import model_update
from deployments.counters import CounterDelta, Metric, counters_add, evidence_deltas
from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.permissions import on_behalf_data
from deployments.policy import Route, Stage, route_for
from deployments.reviewers import reviewer_counts_add
from deployments.services import audit_event_record
from reviews.claims import CLAIM_CLEARED
from reviews.humans.common import (
    AnswerFields,
    Status,
    action_lock,
    answers_compare,
    require_may_decide,
    seconds_since_start,
)
from reviews.humans.models import DoubleVote
from reviews.models import ProposedAction
from reviews.moves import action_system_move

DOUBLE = ProposedAction.Sample.DOUBLE


@dataclass(frozen=True)
class DoubleOutcome:
    """What a vote did: `carry_out` when it was the second and matched the first (then the
    caller approves, edits or rejects as `vote` says); else the action is as it is now."""

    action: ProposedAction
    vote: DoubleVote
    carry_out: bool = False


def _votes(action: ProposedAction) -> list[DoubleVote]:
    return list(DoubleVote.objects.filter(action=action).order_by("round"))


def double_votes_open(action: ProposedAction) -> bool:
    """Whether `action` is a double sample whose votes are still being cast (it is in the
    reviewer queue; once escalated or settled, people decide it as usual)."""
    return action.review_sample == DOUBLE and action.status == Status.PENDING_REVIEW


def double_review_check(action: ProposedAction, actor: AbstractBaseUser) -> None:
    """Refuse an ordinary decision on a double sample while its votes are open (they go
    through `double_vote_record`), and a decision on a disagreement by one of its two voters.
    Caller holds the row lock; approve and reject call it."""
    if action.review_sample != DOUBLE:
        return
    votes = _votes(action)
    if action.status == Status.PENDING_REVIEW and len(votes) < 2:
        raise InvalidTransition(f"action {action.pk} is a double-review sample: two people decide it independently")
    disagreed = action.status == Status.PENDING_SENIOR and len(votes) == 2 and not votes[1].matches_first
    if disagreed and actor.pk in {v.actor_id for v in votes}:
        raise NotAllowed("a senior who cast neither vote settles a double-review disagreement")


def _vote_verb(action: ProposedAction, decision: str, payload: dict[str, Any] | None) -> str:
    if decision == "reject":
        return DoubleVote.Verb.REJECT
    if decision != "approve":
        raise InvalidInput("a double-review vote is approve (optionally with an edited payload) or reject")
    if payload is not None and payload != action.payload:
        return DoubleVote.Verb.EDIT
    return DoubleVote.Verb.APPROVE


@transaction.atomic
def double_vote_record(*, action_id: int, actor: AbstractBaseUser, **answer: Unpack[AnswerFields]) -> "DoubleOutcome":
    """One person's independent decision on a double-review sample: "approve" (optionally
    with an edited `payload`) or "reject" (with a reason).

    Preconditions: the action is a double sample in the reviewer queue with fewer than two
    votes; `actor` may decide it and has not voted on it. The first vote only records itself
    (the action stays pending; audited on the vote, not shown on the action). The second
    settles the pair as the module says, and writes the baseline counters, in the same
    transaction, under the action's row lock. When the two agree, the caller carries out the
    second decision in the same transaction (`DoubleOutcome.carry_out`: reviews.services
    `proposed_action_decide` does, with the ordinary approve or reject).
    """
    decision, payload, reason = answer["decision"], answer.get("payload"), answer.get("reason", "")
    reason = (reason or "").strip()
    if decision == "reject" and not reason:
        raise InvalidInput("a reason is required to reject")
    if payload is not None and not isinstance(payload, dict):
        raise InvalidInput("the edited payload must be a JSON object")
    action = action_lock(action_id)
    if not double_votes_open(action):
        raise InvalidTransition(f"action {action.pk} is {action.status}; its double-review votes are closed")
    now = timezone.now()
    on_behalf_of = require_may_decide(action, actor, now)
    votes = _votes(action)
    if any(v.actor_id == actor.pk for v in votes):
        raise Conflict("you already decided this item; a second person decides it independently")
    verb = _vote_verb(action, decision, payload)
    answer = None if verb == DoubleVote.Verb.REJECT else (payload if verb == DoubleVote.Verb.EDIT else action.payload)
    first = votes[0] if votes else None
    vote = DoubleVote.objects.create(
        action=action,
        round=2 if first else 1,
        actor=actor,
        verb=verb,
        payload=answer,
        reason=reason,
        agrees_with_ai=answers_compare(action, action.payload, answer)["agree"],
        matches_first=answers_compare(action, first.payload, answer)["agree"] if first else None,
        seconds_to_decide=seconds_since_start(action, actor, now),
    )
    audit_event_record(
        verb="reviews.action.double_vote",
        actor=actor,
        deployment=action.deployment_id,
        obj=vote,  # on the vote, not the action: the action's history must not show it to the second reviewer
        reason=reason,
        data={"action": action.pk, "round": vote.round, "verb": verb} | on_behalf_data(on_behalf_of),
    )
    if first is None:
        model_update(action, **CLAIM_CLEARED)
        return DoubleOutcome(action=action, vote=vote)
    counters_add(_baseline_deltas(action, first, vote))
    for voter in (first.actor_id, vote.actor_id):  # each person's agreement with their partner
        reviewer_counts_add(
            deployment_id=action.deployment_id,
            user_id=voter,
            day=now.date(),
            metrics={Metric.DOUBLE_HH_SAME if vote.matches_first else Metric.DOUBLE_HH_DIFFER: (1, 0.0)},
        )
    if vote.matches_first:
        return DoubleOutcome(action=action, vote=vote, carry_out=True)
    action_system_move(
        action,
        to=Status.PENDING_SENIOR,
        verb="reviews.action.double_review_disagreed",
        data={"votes": [first.verb, vote.verb]},
        expires_at=now + action.deployment.senior_sla,
        reason="double review: the two reviewers disagree",
        **CLAIM_CLEARED,
    )
    return DoubleOutcome(action=action, vote=vote)


def _label(agree: bool) -> str:
    return "agree" if agree else "change"


def _baseline_deltas(action: ProposedAction, first: DoubleVote, second: DoubleVote) -> list[CounterDelta]:
    """The counters of one settled pair (see the module's docstring), on today's row."""
    would_auto = (
        route_for(
            stage=Stage.SUPERVISED,
            thresholds=action.deployment.thresholds,
            risk=action.risk_score,
            confidence=action.confidence,
            needs_human=action.needs_human,
        )
        is Route.AUTO
    )
    ai = "auto" if would_auto else "hold"
    metrics = [
        Metric.DOUBLE_HH_SAME if second.matches_first else Metric.DOUBLE_HH_DIFFER,
        Metric.of("double", "hh", f"{_label(first.agrees_with_ai)}_{_label(second.agrees_with_ai)}"),
        Metric.of("double", "ai", f"{ai}_{_label(first.agrees_with_ai)}"),
        Metric.of("double", "ai", f"{ai}_{_label(second.agrees_with_ai)}"),
    ]
    deltas: list[CounterDelta] = []
    for metric in metrics:
        deltas += evidence_deltas(deployment_id=action.deployment_id, action_type=action.action_type, metric=metric)
    return deltas


def double_votes_visible(action: ProposedAction, viewer: AbstractBaseUser) -> list[DoubleVote]:
    """The votes `viewer` may see on the action page: all of them once the votes are closed
    (settled, escalated or expired); while they are open, only the viewer's own."""
    if action.review_sample != DOUBLE:
        return []
    votes = [v for v in DoubleVote.objects.filter(action=action).select_related("actor").order_by("round")]
    if double_votes_open(action):
        return [v for v in votes if v.actor_id == viewer.pk]
    return votes
