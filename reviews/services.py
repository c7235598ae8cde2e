"""Every write to proposed actions: proposal and the lifecycle of SPEC §4 up to approval (the
execution claim, results, cancellation and deadlines are reviews.execution's; runs and
parents reviews.runs').

Each transition is one function, one transaction, with the action's row locked
(`SELECT ... FOR UPDATE`) before its status is read. An illegal move raises
`InvalidTransition`; nothing is ever silently overwritten. Evidence counters and the audit
log are written in the same transaction as the change they describe.
"""

import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Unpack

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.jsonlimits import JsonProblem, json_check
from core.tasks import enqueue_on_commit
from core.updates import model_update
from deployments.calibration import calibration_deltas
from deployments.counters import CounterDelta, Metric, counters_add
from deployments.errors import ApiKeyChanged, Conflict, InvalidInput, InvalidTransition, NotAllowed, RefusedByRule
from deployments.models import ApiKey, Deployment, KeyCheck, Member
from deployments.permissions import Delegator, member_reach, on_behalf_data
from deployments.policy import Route, Stage, route_for
from deployments.reviewers import reviewer_decision_counters
from deployments.rules import (
    Match,
    approvals_required,
    route_why,
    route_with_rules,
    rules_for,
    rules_match,
    strictest_refusal,
)
from deployments.services import (
    api_key_confirm,
    audit_event_build,
    audit_event_record,
    blast_radius_reserve,
    evidence_deltas,
)
from deployments.simulator import HUMAN as REPLAY_OUTCOMES
from deployments.simulator import replay_deltas
from reviews import runs
from reviews.canonical import payload_sha256
from reviews.claims import (
    CLAIM_CLEARED,
    claim_is_live,
    claim_next_in_transaction,
    claim_refuse_if_held_by_other,
    member_for,
    member_of,
    member_require_assigned,
)
from reviews.escalation import escalation_due_at
from reviews.humans.checks import humans_decision_check
from reviews.humans.common import AnswerFields
from reviews.humans.double import double_vote_record, double_votes_open
from reviews.humans.drills import drill_decide, drill_maybe_place
from reviews.humans.sampling import review_sample_for
from reviews.idempotency import IdempotencyKeyTaken, idempotency_claim, idempotency_release
from reviews.ingest import NewProposal, Outcome, proposal_insert
from reviews.models import Decision, IdempotencyRecord, ProposedAction
from reviews.quorum import quorum_approval_record, quorum_refuse_edit
from reviews.representation import action_representation
from reviews.shadow.services import shadow_action_logged

Status = ProposedAction.Status

ROUTE_STATUS = {
    Route.SHADOW: Status.LOGGED,
    Route.AUTO: Status.APPROVED,
    Route.REVIEW: Status.PENDING_REVIEW,
    Route.SENIOR: Status.PENDING_SENIOR,
}


AUDIT_VERBS = {
    Decision.Verb.APPROVE: "reviews.action.approved",
    Decision.Verb.EDIT: "reviews.action.edited_and_approved",
    Decision.Verb.REJECT: "reviews.action.rejected",
    Decision.Verb.EXPIRE: "reviews.action.expired",
    Decision.Verb.ESCALATE: "reviews.action.escalated",
}

# A person's decisions counted per reviewer (deployments.reviewers: the reviewer-quality page).
REVIEWER_VERBS = (Decision.Verb.APPROVE, Decision.Verb.EDIT, Decision.Verb.REJECT, Decision.Verb.ESCALATE)

# The webhook event each human (or clock) decision sends to the action's callback_url.
WEBHOOK_EVENTS = {
    Decision.Verb.APPROVE: "action.approved",
    Decision.Verb.EDIT: "action.approved",
    Decision.Verb.REJECT: "action.rejected",
    Decision.Verb.EXPIRE: "action.expired",
}


def _require_can_decide(action: ProposedAction, member: Member | None) -> Delegator | None:
    """Reviewers decide the reviewer queue of their deployments; seniors also the senior queue;
    a delegate those a delegation in effect hands them (deployments.permissions). Returns whom
    the member decides for (None: on their own rights)."""
    if member is None:
        raise NotAllowed("only members may decide actions")
    queue = "senior" if action.status == Status.PENDING_SENIOR else "review"
    return member_require_assigned(member, action.deployment_id, queue)


@dataclass(frozen=True)
class Proposal:
    """What an agent proposes (SPEC §5's fields), as `proposal_build` stores it."""

    action_type: str
    payload: dict[str, Any]
    risk_score: float
    confidence: float
    external_id: str = ""
    model_version: str = ""
    rationale: str = ""
    needs_human: bool = False
    callback_url: str = ""

    def rule_fields(self) -> dict[str, Any]:
        """The fields a payload rule may read (deployments.rules.FIELDS), by name."""
        fields = dict(self.__dict__)
        del fields["callback_url"]
        return fields


def proposed_action_create(
    *,
    deployment: Deployment,
    proposal: Proposal,
    idempotency_key: str | None = None,
    actor_label: str = "",
    idempotency_record: IdempotencyRecord | None = None,
    key_check: KeyCheck | None = None,
    deadline: datetime | None = None,
    run_id: str = "",
    run_hold: bool = False,
    parent_id: int | None = None,
    traceparent: str = "",
) -> ProposedAction:
    """Store `proposal` (SPEC §5's fields) as an action and route it by the deployment's
    effective stage (SPEC §1).

    Refuses (Conflict) a proposal that repeats one already rejected for the same external_id.
    `idempotency_record`, the API's Idempotency-Key, is stored with the 201 reply in the same
    transaction, so the replay exists exactly when the action does: an unsaved record is
    claimed there (IdempotencyKeyTaken if the key is already claimed), a saved one (claimed
    before, reviews.idempotency) completed. With `key_check` (an API key from the process's
    cache, `deployment` as read with it) nothing is written unless the key is still as it was
    read (ApiKeyChanged). `deadline` (at most the SLA: InvalidInput otherwise), `run_id` and
    `parent_id` are issue 15's (reviews.execution, reviews.runs). `traceparent`: the agent's W3C
    trace context, kept on the action.

    One transaction: with a blast-radius budget to reserve, or a run or parent to lock and
    read, an explicit one; otherwise the single statement of `reviews.ingest`.
    """
    now = timezone.now()
    runs.deadline_check(deployment=deployment, deadline=deadline, now=now)
    linked = bool(run_id) or parent_id is not None
    routed = _route(deployment, proposal.rule_fields(), actor_label=actor_label)
    route = routed[1]
    reserve = route is Route.AUTO and deployment.has_blast_limits
    with transaction.atomic() if linked or reserve else nullcontext():
        links = runs.ProposalLinks(deadline=deadline)
        if linked:
            links = runs.proposal_links(
                deployment=deployment, run_id=run_id, run_hold=run_hold, parent_id=parent_id, deadline=deadline
            )
        new = proposal_build(
            deployment=deployment,
            proposal=proposal,
            idempotency_key=idempotency_key,
            actor_label=actor_label,
            now=now,
            links=links,
            routed=routed,
            traceparent=traceparent,
        )
        new.idempotency, new.key_check = idempotency_record, key_check
        stored = proposal_insert(new)
        if stored is Outcome.REJECTED:
            raise Conflict(
                f"this {proposal.action_type} for external_id {proposal.external_id!r} was already rejected; "
                "a rejected action stays rejected"
            )
        if stored is Outcome.KEY_TAKEN:
            raise IdempotencyKeyTaken(idempotency_key)
        if stored is Outcome.KEY_CHANGED:
            raise ApiKeyChanged(key_check)
        if links.run is not None and new.action.is_pending:
            runs.run_hold_siblings(run=links.run, exclude=[new.action.pk])
    action = new.action
    if action.route == Route.SHADOW:
        shadow_action_logged(action=action)  # its outcome may have arrived first
    elif action.route == Route.REVIEW:
        drill_maybe_place(deployment=deployment, action_type=proposal.action_type)  # reviews/humans/drills.py
    if route in (Route.REVIEW, Route.SENIOR):
        _slack_sync(action)
    return action


def _apply_rules(
    *, deployment: Deployment, route: Route, rules: tuple, fields: dict[str, Any], actor_label: str
) -> tuple[Route, list]:
    """The route raised by the payload rules that match (deployments.rules), and those rules.
    A matching `refuse` rule refuses the proposal (RefusedByRule, 422): audited, nothing else
    stored."""
    matches = rules_match(rules, fields)
    if refusal := strictest_refusal(matches):
        audit_event_record(
            verb="reviews.action.refused_by_rule",
            actor_label=actor_label or "agent",
            deployment=deployment,
            data={"action_type": fields["action_type"], "external_id": fields["external_id"], **refusal.as_dict()},
        )
        raise RefusedByRule(f"refused by payload rule {refusal.name!r} of {fields['action_type']}")
    return route_with_rules(route, matches), matches


def _slack_sync(action: ProposedAction) -> None:
    """Slack approvals (integrations.slack): post or update the action's message once this
    transaction commits, if its deployment has a Slack channel."""
    if action.deployment.slack_channel:
        enqueue_on_commit("integrations.slack_action_sync", action.pk, robust=True)


def _route(
    deployment: Deployment, fields: dict[str, Any], *, actor_label: str = ""
) -> tuple[Stage, Route, tuple[Match, ...]]:
    """The effective stage and the route of a proposal (its `Proposal.rule_fields`; before any
    blast-radius limit), raised by the deployment's payload rules for its type, and the rules
    that matched. A matching `refuse` rule refuses it (RefusedByRule, 422; _apply_rules)."""
    action_type = fields["action_type"]
    stage = deployment.effective_stage(action_type)
    route = route_for(
        stage=stage,
        thresholds=deployment.thresholds,
        risk=fields["risk_score"],
        confidence=fields["confidence"],
        needs_human=fields["needs_human"],
        fail_closed=deployment.fail_closed,
    )
    matches: tuple[Match, ...] = ()
    if rules := rules_for(deployment.payload_rules, action_type):
        route, matches = _apply_rules(
            deployment=deployment, route=route, rules=rules, fields=fields, actor_label=actor_label
        )
    return stage, route, tuple(matches)


def proposal_build(
    *,
    deployment: Deployment,
    proposal: Proposal,
    idempotency_key: str | None = None,
    actor_label: str = "",
    now: datetime,
    links: "runs.ProposalLinks",
    routed: tuple[Stage, Route, tuple[Match, ...]] | None = None,
    traceparent: str = "",
) -> NewProposal:
    """The rows of one routed proposal, unsaved (the routing of SPEC §1, the run's hold and
    the parent of reviews.runs, the payload rules: RefusedByRule); `routed` is `_route`'s
    answer when the caller has it.
    Reserves from the blast-radius budget: call inside the transaction that stores the rows
    when the deployment has limits."""
    payload = proposal.payload
    proposal_hash = payload_sha256(payload)
    stage, route, matches = routed or _route(deployment, proposal.rule_fields(), actor_label=actor_label)
    limited = ""
    if route is Route.AUTO and deployment.has_blast_limits:
        allowed, limited = blast_radius_reserve(deployment=deployment, payload=payload, now=now)
        if not allowed:
            route = Route.REVIEW  # past a blast-radius limit (or failed closed meanwhile): a person decides
    action = ProposedAction(
        deployment=deployment,
        **proposal.__dict__,
        **links.__dict__,  # deadline, run, parent
        idempotency_key=idempotency_key,
        proposal_sha256=proposal_hash,
        stage=stage.value,
        route=route.value,
        status=ROUTE_STATUS[route],
        created_at=now,
        traceparent=traceparent,
    )
    if route is Route.AUTO:
        action.final_payload = payload
        action.payload_sha256 = proposal_hash
        action.decided_at = now
        action.audit_sample = random.random() < deployment.audit_sample_rate
    elif route is Route.REVIEW:
        action.expires_at = runs.capped(now + deployment.review_sla, links.deadline)
    elif route is Route.SENIOR:
        action.expires_at = runs.capped(now + deployment.senior_sla, links.deadline)
    action.approvals_required = approvals_required(route, matches)  # reviews/quorum.py
    if action.approvals_required == 1:  # a quorum item is never a blind or double sample
        action.review_sample = review_sample_for(deployment=deployment, stage=stage, route=route)
    verb = "reviews.action.auto_approved" if route is Route.AUTO else "reviews.action.proposed"
    extra: dict[str, Any] = {"limited": limited} if limited else {}
    if links.run is not None or links.parent is not None:
        verb, extra = runs.proposal_gate(action=action, verb=verb, data=extra)
    if links.deadline is not None:
        extra["deadline"] = links.deadline.isoformat()
    audit = audit_event_build(
        verb=verb,
        actor_label=actor_label or "agent",
        deployment=deployment,
        obj=action,
        reason=action.reason,
        data={
            "action_type": proposal.action_type,
            "route": route.value,
            "stage": stage.value,
            "risk_score": proposal.risk_score,
            "confidence": proposal.confidence,
            "fail_closed": deployment.fail_closed,
            **extra,
            **({"rules": [m.as_dict() for m in matches]} if matches else {}),
            "why": route_why(
                deployment_stage=deployment.stage,
                stage=stage.value,
                thresholds=deployment.thresholds,
                risk=proposal.risk_score,
                confidence=proposal.confidence,
                needs_human=proposal.needs_human,
                paused=deployment.paused,
                breaker_reason=deployment.breaker_reason if deployment.breaker_tripped else None,
                matches=matches,
                limited=limited,
            ),
        },
    )
    return NewProposal(
        action=action,
        audit=audit,
        counters=evidence_deltas(
            deployment_id=deployment.pk, action_type=proposal.action_type, metric=Metric.of("proposed", route), at=now
        ),
        unless_rejected=bool(proposal.external_id),
    )


@dataclass
class ProposalReply:
    """What the agent API answers a proposal: the action's representation with 201, or the
    reply stored with its Idempotency-Key (`replayed`)."""

    status: int
    body: dict
    replayed: bool = False


def proposed_action_submit(*, key: ApiKey, proposal: dict[str, Any], fingerprint: str) -> ProposalReply | None:
    """The agent API's proposal, all steps: store it (`proposed_action_create` with
    `proposal`'s fields, `idempotency_key` among them), its Idempotency-Key claimed in the
    same statement; if the API key changed since it was cached, confirm it and retry once; if
    the Idempotency-Key is already claimed, replay its stored reply, or take the key over
    (reviews.idempotency: 409, 422 or an expired claim) and do the work.

    `key` is the request's API key (perhaps from the process's cache); `fingerprint` the
    request's SHA-256 (needed only with an Idempotency-Key). Returns None when the API key is
    no longer active (the caller answers 401). Raises only domain errors (Conflict,
    IdempotencyKeyReused, ...): the outcomes it handles itself never leave it.
    """
    idempotency_key = proposal["idempotency_key"]
    try:
        try:
            return _submit(key, proposal, fingerprint)
        except ApiKeyChanged:
            key = api_key_confirm(key)
            if key is None:
                return None
            return _submit(key, proposal, fingerprint)
    except IdempotencyKeyTaken:
        key = api_key_confirm(key)  # a replay tells what the key's deployment did: not to a revoked key
        if key is None:
            return None
        record = idempotency_claim(deployment=key.deployment, key=idempotency_key, fingerprint=fingerprint)
        if not record.in_flight:
            return ProposalReply(status=record.response_status, body=record.response_body, replayed=True)
        try:
            action = _create_for_key(key, proposal, record)
        except BaseException:
            idempotency_release(record=record)
            raise
        return ProposalReply(status=201, body=action_representation(action, deployment_slug=key.deployment.slug))


def _submit(key: ApiKey, proposal: dict[str, Any], fingerprint: str) -> ProposalReply:
    """The action, its Idempotency-Key (if sent) claimed in the same statement; the reply is
    the one stored with the key, if any (the same document)."""
    record = None
    if proposal["idempotency_key"] is not None:
        record = IdempotencyRecord(
            deployment_id=key.deployment_id, key=proposal["idempotency_key"], request_sha256=fingerprint
        )
    action = _create_for_key(key, proposal, record)
    # The reply PostgreSQL's statement stored with the key is at hand; elsewhere it is built.
    reply = record.response_body if record is not None else None
    if reply is None:
        reply = action_representation(action, deployment_slug=key.deployment.slug)
    return ProposalReply(status=201, body=reply)


def _create_for_key(key: ApiKey, proposal: dict[str, Any], record: IdempotencyRecord | None) -> ProposedAction:
    return proposed_action_create(
        deployment=key.deployment,
        **proposal,  # the Proposal and its options
        actor_label=f"api-key:{key.prefix}",
        idempotency_record=record,
        key_check=key.key_check,
    )


@dataclass(frozen=True)
class Move:
    """One decision on an action, as its Decision row, counters and audit event record it:
    who (`actor`, for `on_behalf_of` under a delegation), which `verb`, from which status (the
    action's new one is already set), why and when."""

    action: ProposedAction
    verb: Decision.Verb
    actor: AbstractBaseUser | None
    from_status: str
    reason: str
    now: datetime
    on_behalf_of: Delegator | None = None


def _decision_create(
    move: Move,
    *,
    payload_before: Any = None,
    payload_after: Any = None,
    metric: Metric | None = None,
    final: bool = False,
) -> tuple[Decision, float]:
    """The Decision row of a move (to `action.status`, already set) and its counters, all in
    one statement on PostgreSQL: `metric` (by default `decision.<verb>`) with the seconds it
    took (from the decider's claim, else from the proposal), its calibration outcome, a
    `final` move's SLA and counterfactual evidence (`_final_evidence`), and the decider's own
    counters (deployments.reviewers)."""
    action, verb, actor, now = move.action, move.verb, move.actor, move.now
    started = action.claimed_at if action.claimed_at and action.claimed_by_id == getattr(actor, "pk", None) else None
    seconds = (now - (started or action.created_at)).total_seconds()
    decision = Decision.objects.create(
        action=action,
        verb=verb,
        actor=actor if actor is not None and actor.is_authenticated else None,
        from_status=move.from_status,
        to_status=action.status,
        reason=move.reason,
        payload_before=payload_before,
        payload_after=payload_after,
        claimed_at=started,
        seconds_to_decide=seconds,
        on_behalf_of_id=move.on_behalf_of.user_id if move.on_behalf_of is not None else None,
    )
    metric = metric or Metric.of("decision", verb)
    ids = {"deployment_id": action.deployment_id, "action_type": action.action_type, "metric": metric}
    deltas = [*evidence_deltas(**ids, total=seconds), *calibration_deltas(**ids, confidence=action.confidence, at=now)]
    if final:
        deltas += _final_evidence(action=action, verb=verb, now=now)
    statements = []
    if decision.actor_id is not None and verb in REVIEWER_VERBS:
        mine, statements = reviewer_decision_counters(
            deployment_id=action.deployment_id, user_id=decision.actor_id, verb=verb, seconds=seconds, day=now.date()
        )
        deltas += mine
    if verb.value in REPLAY_OUTCOMES:  # a person's (or the clock's) decision, not an audit verdict
        deltas += replay_cell_deltas(action, verb.value, seconds)
    counters_add(deltas, also=statements)  # one statement on PostgreSQL (the decision's query budget)
    _slack_sync(action)
    return decision, seconds


def replay_cell_deltas(action: ProposedAction, outcome: str, seconds: float = 0.0) -> list[CounterDelta]:
    """The simulator's cell of this decided (or auto-executed) proposal (deployments.simulator),
    to add with the other counters of the same event in its one `counters_add`."""
    return replay_deltas(
        deployment_id=action.deployment_id,
        action_type=action.action_type,
        risk=action.risk_score,
        confidence=action.confidence,
        needs_human=action.needs_human,
        outcome=outcome,
        seconds=seconds,
    )


def _final_evidence(*, action: ProposedAction, verb: Decision.Verb, now: datetime) -> list[CounterDelta]:
    """A final decision's SLA evidence and the 2→3 counterfactual: would stage 3 have
    auto-executed this approval-stage action, and did the person change it?"""
    if verb not in (Decision.Verb.APPROVE, Decision.Verb.EDIT, Decision.Verb.REJECT):
        return []
    ids = {"deployment_id": action.deployment_id, "action_type": action.action_type}
    within = action.expires_at is None or now <= action.expires_at
    deltas = evidence_deltas(**ids, metric=Metric.SLA_WITHIN if within else Metric.SLA_BREACHED, at=now)
    if action.stage == Stage.APPROVAL:
        would_route = route_for(
            stage=Stage.SUPERVISED,
            thresholds=action.deployment.thresholds,
            risk=action.risk_score,
            confidence=action.confidence,
            needs_human=action.needs_human,
        )
        if would_route is Route.AUTO:
            deltas += evidence_deltas(**ids, metric=Metric.COUNTERFACTUAL_AUTO, at=now)
            if verb is not Decision.Verb.APPROVE:
                deltas += evidence_deltas(**ids, metric=Metric.COUNTERFACTUAL_AUTO_CHANGED, at=now)
    return deltas


def _record_final(move: Move, *, seconds: float) -> None:
    """What a final decision (approve, edit, reject, expire) adds to its Decision row (whose
    counters `_decision_create` wrote): the audit event and the agent's webhook."""
    action = move.action
    data = {"from": move.from_status, "to": action.status, "seconds_to_decide": round(seconds, 3)}
    if action.approvals_required > 1:
        data["approvals"] = f"{action.approvals_given} of {action.approvals_required}"
    audit_event_record(
        verb=AUDIT_VERBS[move.verb],
        actor=move.actor,
        obj=action,
        reason=move.reason,
        data=data | on_behalf_data(move.on_behalf_of),
    )
    # The outbox row commits (or rolls back) with the decision: the agent learns every one.
    runs.action_notify(action=action, event=WEBHOOK_EVENTS[move.verb])


def _move(
    *,
    action: ProposedAction,
    to: str,
    verb: Decision.Verb,
    actor: AbstractBaseUser | None,
    reason: str,
    now: datetime,
    final: bool = True,
    payload_before: Any = None,
    payload_after: Any = None,
    audit_verb: str = "",
    metric: Metric | None = None,
    on_behalf_of: Delegator | None = None,
) -> ProposedAction:
    """The one shape of a person's (or the clock's) move on a pending action: set its status
    and reason, write the Decision with its evidence and audit event, clear the claim, save.

    Precondition: the caller holds the row lock and has checked that the move is allowed. A
    `final` move (approve, edit, reject, expire) is decided at `now` and tells the agent (see
    `_record_final`); escalation is not final: only its Decision row, its counter and
    its audit event are written, and the agent keeps waiting. `on_behalf_of`: the person a
    delegate decides for (the Decision and the audit event name both).
    """
    from_status = action.status
    action.status = to
    action.reason = reason
    if final:
        action.decided_at = now
    move = Move(action, verb, actor, from_status, reason, now, on_behalf_of)
    _, seconds = _decision_create(
        move, payload_before=payload_before, payload_after=payload_after, metric=metric, final=final
    )
    if final:
        _record_final(move, seconds=seconds)
    else:
        audit_event_record(
            verb=audit_verb or AUDIT_VERBS[verb],
            actor=actor,
            actor_label="" if actor is not None else "system",
            obj=action,
            reason=reason,
            data={"from": from_status, "to": to} | on_behalf_data(on_behalf_of),
        )
    action.claimed_by, action.claimed_at = None, None
    action.save()
    if final:
        runs.lineage_settle(action=action)  # issue 15: what its run or its children wait for
    return action


def _require_pending(action: ProposedAction, done: str) -> None:
    if not action.is_pending:
        raise InvalidTransition(f"action {action.pk} is {action.status}; only pending actions can be {done}")


def _reason_required(reason: str, to: str) -> str:
    if not reason or not reason.strip():
        raise InvalidInput(f"a reason is required to {to}")
    return reason.strip()


def _approve(
    action: ProposedAction, *, actor: AbstractBaseUser, member: Member | None, payload: Any, reason: str
) -> ProposedAction:
    """Caller holds the row lock."""
    _require_pending(action, "approved")
    on_behalf_of = _require_can_decide(action, member)
    humans_decision_check(action, actor)
    if payload is not None and not isinstance(payload, dict):
        raise InvalidInput("the edited payload must be a JSON object")
    try:
        json_check(action.payload, field="payload")
    except JsonProblem as problem:  # stored before the input limits: it can be neither hashed nor shown whole
        raise InvalidInput(f"this proposal is outside the input limits ({problem}); it can only be rejected") from None
    try:
        if payload is not None:
            json_check(payload, field="payload")
    except JsonProblem as problem:
        raise InvalidInput(f"the edited payload is refused: {problem}") from None
    edited = payload is not None and payload_sha256(payload) != action.proposal_sha256
    now = timezone.now()
    if action.approvals_required > 1:  # a quorum (reviews/quorum.py): only the last approval carries it out
        if edited:
            quorum_refuse_edit(action)
        if not quorum_approval_record(action=action, actor=actor, on_behalf_of=on_behalf_of, reason=reason, now=now):
            _slack_sync(action)
            return action
    final = payload if edited else action.payload
    action.final_payload = final
    action.payload_sha256 = payload_sha256(final)
    return _move(
        action=action,
        # Approved, or held while the run's hold or the parent keeps it back (reviews.runs).
        to=runs.gate_status(action=action),
        verb=Decision.Verb.EDIT if edited else Decision.Verb.APPROVE,
        actor=actor,
        reason=reason,
        now=now,
        payload_before=action.payload if edited else None,
        payload_after=final if edited else None,
        on_behalf_of=on_behalf_of,
    )


def _reject(action: ProposedAction, *, actor: AbstractBaseUser, member: Member | None, reason: str) -> ProposedAction:
    """Caller holds the row lock; `reason` is stripped and not empty."""
    _require_pending(action, "rejected")
    on_behalf_of = _require_can_decide(action, member)
    humans_decision_check(action, actor)
    return _move(
        action=action,
        to=Status.REJECTED,
        verb=Decision.Verb.REJECT,
        actor=actor,
        reason=reason,
        now=timezone.now(),
        on_behalf_of=on_behalf_of,
    )


def _escalate(action: ProposedAction, *, actor: AbstractBaseUser, member: Member | None, reason: str) -> ProposedAction:
    """Caller holds the row lock; `reason` is stripped and not empty."""
    if action.status != Status.PENDING_REVIEW:
        raise InvalidTransition(
            f"action {action.pk} is {action.status}; only actions in the reviewer queue can be escalated"
        )
    on_behalf_of = _require_can_decide(action, member)
    humans_decision_check(action, actor, escalating=True)
    return _to_senior(action, actor=actor, reason=reason, now=timezone.now(), on_behalf_of=on_behalf_of)


def _to_senior(
    action: ProposedAction, *, actor: AbstractBaseUser | None, reason: str, now: datetime, **move: Any
) -> ProposedAction:
    """An escalation (a person's or the clock's): to the senior queue with a fresh senior SLA
    (capped by the agent's deadline); not final. Caller holds the row lock and has checked the move."""
    action.expires_at = runs.capped(now + action.deployment.senior_sla, action.deadline)
    return _move(
        action=action,
        to=Status.PENDING_SENIOR,
        verb=Decision.Verb.ESCALATE,
        actor=actor,
        reason=reason,
        now=now,
        final=False,
        **move,
    )


@transaction.atomic
def proposed_action_approve(
    *, action_id: int, actor: AbstractBaseUser, payload: dict[str, Any] | None = None, reason: str = ""
) -> ProposedAction:
    """Approve a pending action, optionally with an edited payload (bound by its SHA-256)."""
    action = ProposedAction.objects.locked_with_lineage(action_id)
    return _approve(action, actor=actor, member=member_of(actor), payload=payload, reason=reason)


@transaction.atomic
def proposed_action_reject(*, action_id: int, actor: AbstractBaseUser, reason: str) -> ProposedAction:
    """Reject a pending action. A reason is required."""
    return _with_reason(_reject, "reject", action_id=action_id, actor=actor, reason=reason)


@transaction.atomic
def proposed_action_escalate(*, action_id: int, actor: AbstractBaseUser, reason: str) -> ProposedAction:
    """Move an action from the reviewer queue to the senior queue. A reason is required."""
    return _with_reason(_escalate, "escalate", action_id=action_id, actor=actor, reason=reason)


def _with_reason(transition: Callable, verb: str, *, action_id: int, actor: AbstractBaseUser, reason: str):
    reason = _reason_required(reason, verb)  # checked before the row is locked
    return transition(
        ProposedAction.objects.locked_with_lineage(action_id), actor=actor, member=member_of(actor), reason=reason
    )


@transaction.atomic
def proposed_action_expire(*, action_id: int, now: datetime | None = None) -> ProposedAction | None:
    """Expire a pending action whose SLA deadline has passed. Safe to repeat: returns None
    (and changes nothing) when the action was decided, or expired, in the meantime."""
    now = now or timezone.now()
    action = ProposedAction.objects.locked_with_lineage(action_id)
    if not action.is_pending or action.expires_at is None or action.expires_at > now:
        return None
    if action.review_sample == ProposedAction.Sample.DRILL:  # closed without evidence
        drill_decide(action=action, actor=None, decision="expire")
        return action
    past_deadline = action.deadline is not None and action.deadline <= now
    return _move(
        action=action,
        to=Status.EXPIRED,
        verb=Decision.Verb.EXPIRE,
        actor=None,
        reason="the agent's deadline passed without a decision" if past_deadline else "SLA passed without a decision",
        now=now,
    )


@transaction.atomic
def proposed_action_auto_escalate(*, action_id: int, now: datetime | None = None) -> ProposedAction | None:
    """Move a reviewer-queue action whose escalation point has passed (its deployment's
    `escalate_at_sla_share` of `review_sla`) to the senior queue, with a fresh senior SLA.
    Safe to repeat and to race a person: under the row lock it returns None (and changes
    nothing) unless the action is still in the reviewer queue, still due and not a drill or
    double-review sample (reviews/escalation.py says why those keep their queue)."""
    now = now or timezone.now()
    action = ProposedAction.objects.locked(action_id)
    due = escalation_due_at(action)
    if action.status != Status.PENDING_REVIEW or due is None or due > now:
        return None
    enqueue_on_commit("reviews.escalation_notify", action.pk, robust=True)
    return _to_senior(
        action,
        actor=None,
        reason=f"{action.deployment.escalate_at_sla_share:.0%} of the review SLA passed without a decision",
        now=now,
        audit_verb="reviews.action.auto_escalated",
        metric=Metric.ESCALATION_AUTO,
    )


@dataclass
class Decided:
    """A browser decision: the action as decided, the queue it was in, whether the decider was
    working through that queue (`in_flow`: they held the live claim on it), and then the next
    item of the queue now claimed for them (None when it is empty, or when not in the flow)."""

    action: ProposedAction
    queue: str
    following: ProposedAction | None
    in_flow: bool = True


DECISIONS = ("approve", "reject", "escalate")


class DecideOptions(AnswerFields, total=False):
    """A browser decision: `decision` (approve, reject or escalate), its `reason` (required to
    reject or escalate), an edited `payload` (approve), and the actor's `member` row if the
    caller has it loaded."""

    member: Member | None


@transaction.atomic
def proposed_action_decide(
    *, action_id: int, actor: AbstractBaseUser, **options: Unpack[DecideOptions]
) -> ProposedAction:
    """A person's decision from the browser: approve (optionally with an edited payload),
    reject or escalate. Refuses (Conflict) while someone else holds a live claim on the item.

    Locks the row once and passes the locked action to the transition (the state check, the
    Decision row, evidence and audit are the transition's, as in proposed_action_approve /
    _reject / _escalate).
    """
    return _decide(action_id=action_id, actor=actor, **options)[0]


@transaction.atomic
def proposed_action_decide_and_claim_next(
    *, action_id: int, actor: AbstractBaseUser, **options: Unpack[DecideOptions]
) -> Decided:
    """`proposed_action_decide`, then, if the actor was working through the queue (they held
    the live claim on this item: only "Review next" claims), claim the next item of that queue
    in the same transaction (the browser's "decide and go on"). A decision on an item reached
    any other way (a direct link) claims nothing. `member` (the actor's Member row, loaded once
    per request) serves both steps."""
    action, queue, member, in_flow = _decide(action_id=action_id, actor=actor, **options)
    if not in_flow:
        return Decided(action=action, queue=queue, following=None, in_flow=False)
    following = claim_next_in_transaction(actor=actor, queue=queue, member=member)
    return Decided(action=action, queue=queue, following=following)


def _decide(
    *,
    action_id: int,
    actor: AbstractBaseUser,
    decision: str,
    reason: str = "",
    payload: dict[str, Any] | None = None,
    member: Member | None = None,
) -> tuple[ProposedAction, str, Member | None, bool]:
    """The decision, in the caller's transaction: the action, the queue it was in, the member,
    and whether `actor` held the live claim on it (read before the decision clears it)."""
    action = ProposedAction.objects.locked_with_lineage(action_id)
    now = timezone.now()
    claim_refuse_if_held_by_other(action, actor, now)
    held = action.claimed_by_id == actor.pk and claim_is_live(action, now)
    if decision not in DECISIONS:
        raise InvalidInput("decision must be approve, reject or escalate")
    if decision != "approve":
        reason = _reason_required(reason, decision)
    member = member_for(actor, member)
    queue = action.queue
    if action.review_sample == ProposedAction.Sample.DRILL:
        drill_decide(action=action, actor=actor, decision=decision)  # never approved, never executed
        return action, queue, member, held
    if decision != "escalate" and double_votes_open(action):
        voted = double_vote_record(action_id=action_id, actor=actor, decision=decision, payload=payload, reason=reason)
        if not voted.carry_out:
            return voted.action, queue, member, held
        # The second of two matching decisions: carried out as usual, by its author.
        vote = voted.vote
        decision = "reject" if vote.verb == "reject" else "approve"
        payload, reason = (vote.payload if vote.verb == "edit" else None), vote.reason
    if decision == "approve":
        _approve(action, actor=actor, member=member, payload=payload, reason=reason)
    elif decision == "reject":
        _reject(action, actor=actor, member=member, reason=reason)
    else:
        _escalate(action, actor=actor, member=member, reason=reason)
    return action, queue, member, held


AUDIT_VERDICTS = {"correct": Decision.Verb.AUDIT_CORRECT, "incorrect": Decision.Verb.AUDIT_INCORRECT}


@transaction.atomic
def proposed_action_audit_verdict(
    *, action_id: int, actor: AbstractBaseUser, verdict: str, reason: str = "", member: Member | None = None
) -> ProposedAction:
    """A senior's after-the-fact verdict on an auto-executed audit sample (SPEC §1).

    Preconditions: `actor` is a senior (or admin) assigned to the deployment; the action is an
    audit sample without a verdict; `verdict` is "correct" or "incorrect" (the latter needs a
    reason). Writes a Decision (audit_correct / audit_incorrect), the `audit.<verdict>`
    evidence counter the gate and breakers read, and the audit event, in one transaction.
    A second verdict raises InvalidTransition and changes nothing.
    """
    if verdict not in AUDIT_VERDICTS:
        raise InvalidInput("verdict must be 'correct' or 'incorrect'")
    reason = (reason or "").strip()
    if verdict == "incorrect" and not reason:
        raise InvalidInput("a reason is required for an 'incorrect' verdict")
    action = ProposedAction.objects.locked(action_id)
    member = member_for(actor, member)
    if member is None or not member_reach(member).works("audit"):
        raise NotAllowed("only senior reviewers may give audit verdicts")
    on_behalf_of = member_require_assigned(member, action.deployment_id, "audit")
    if not action.audit_sample:
        raise InvalidTransition(f"action {action.pk} is not an audit sample")
    if action.audit_verdict:
        raise InvalidTransition(f"action {action.pk} already has the audit verdict {action.audit_verdict!r}")
    # The verdict's Decision, timed from the auditor's claim, before the claim is released.
    verdict_move = Move(action, AUDIT_VERDICTS[verdict], actor, action.status, reason, timezone.now(), on_behalf_of)
    _decision_create(verdict_move, metric=Metric.of("audit", verdict))
    model_update(action, audit_verdict=verdict, **CLAIM_CLEARED)
    audit_event_record(
        verb="reviews.action.audit_verdict",
        actor=actor,
        obj=action,
        reason=reason,
        data={"verdict": verdict, "status": action.status, "route": action.route} | on_behalf_data(on_behalf_of),
    )
    return action
