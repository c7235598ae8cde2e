"""A list of proposals of one run in one request (issue 15, SPEC §7): POST /api/v1/actions/batch.

Each proposal is routed on its own (reviews.services.proposal_build, the single proposal's
routing, blast-radius budget and run/parent gates); the list is stored all or none, in one
transaction, with one INSERT per table and one upsert per counter table, so a proposal in a
list of 100 costs a fraction of one sent alone (bench/ingest.py measures it).
"""

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from deployments.counters import counters_add
from deployments.errors import Conflict, InvalidInput
from deployments.models import AuditEvent, Deployment
from reviews import runs
from reviews.canonical import payload_sha256
from reviews.idempotency import idempotency_complete
from reviews.ingest import REPLAY_STATUS
from reviews.models import IdempotencyRecord, ProposedAction
from reviews.representation import action_representation
from reviews.services import proposal_build
from reviews.shadow.services import shadow_action_logged

Status = ProposedAction.Status


def batch_reply(*, run_id: str, actions: Sequence[ProposedAction]) -> dict[str, Any]:
    """The 201 body of a list: its run and every action's representation, in the list's order."""
    return {"run_id": run_id or None, "actions": [action_representation(a) for a in actions]}


@transaction.atomic
def proposed_actions_create_batch(
    *,
    deployment: Deployment,
    proposals: Sequence[dict[str, Any]],
    run_id: str = "",
    run_hold: bool = False,
    actor_label: str = "agent",
    idempotency_record: IdempotencyRecord | None = None,
) -> tuple[list[ProposedAction], dict[str, Any]]:
    """Store 1 to MAX_BATCH proposals (each {"proposal": a Proposal, "parent_id", "deadline"})
    of one run; returns the actions and the reply.

    Refuses the whole list, naming the item: Conflict if one repeats a rejected proposal,
    InvalidInput for a missing parent or a deadline past the SLA. With a run hold the list's
    own gated items hold its approved ones as the run's earlier ones do. `idempotency_record`
    (claimed before, reviews.idempotency) is completed with the reply in this transaction.
    """
    if not 1 <= len(proposals) <= runs.MAX_BATCH:
        raise InvalidInput(f"actions: send 1 to {runs.MAX_BATCH} proposals")
    now = timezone.now()
    for i, item in enumerate(proposals):
        try:
            runs.deadline_check(deployment=deployment, deadline=item.get("deadline"), now=now)
        except InvalidInput as exc:
            raise InvalidInput(f"actions[{i}].{exc.detail}") from None
    run = runs.run_lock(deployment=deployment, key=run_id, hold=run_hold, actor_label=actor_label) if run_id else None
    parents = runs.parents_lock(deployment=deployment, ids=[p["parent_id"] for p in proposals if p.get("parent_id")])
    _refuse_rejected_again(deployment, proposals)

    news = []
    for item in proposals:
        links = runs.ProposalLinks(deadline=item.get("deadline"), parent=parents.get(item.get("parent_id")))
        news.append(
            proposal_build(
                deployment=deployment, proposal=item["proposal"], actor_label=actor_label, now=now, links=links
            )
        )
    if run is not None:
        pending = any(n.action.is_pending for n in news) or runs.run_has_pending(run.pk)
        for new in news:
            new.action.run = run
            if new.action.status == Status.APPROVED and run.hold and pending:
                new.action.status = Status.HELD
                new.audit.data["held"] = f"the hold of run {run.key!r}: a sibling waits for a person"

    actions = ProposedAction.objects.bulk_create([n.action for n in news])
    if run is not None:
        runs.run_hold_siblings(run=run, exclude=[a.pk for a in actions])
    for new in news:
        new.audit.object_id = str(new.action.pk)
    AuditEvent.objects.bulk_create([n.audit for n in news])
    counters_add([delta for n in news for delta in n.counters])
    reply = batch_reply(run_id=run_id, actions=actions)
    if idempotency_record is not None:
        idempotency_complete(record=idempotency_record, status=REPLAY_STATUS, body=reply)
    for action in actions:
        if action.route == ProposedAction.RouteChoices.SHADOW:
            shadow_action_logged(action=action)  # its outcome may have arrived first
    return actions, reply


def _refuse_rejected_again(deployment: Deployment, proposals: Sequence[dict[str, Any]]) -> None:
    """Rejected stays rejected (SPEC §4), for a whole list in one query."""
    keyed = [(i, item["proposal"]) for i, item in enumerate(proposals) if item["proposal"].external_id]
    if not keyed:
        return
    rejected = set(
        ProposedAction.objects.filter(
            deployment=deployment, status=Status.REJECTED, external_id__in=[p.external_id for _, p in keyed]
        ).values_list("external_id", "action_type", "proposal_sha256")
    )
    for i, p in keyed:
        if (p.external_id, p.action_type, payload_sha256(p.payload)) in rejected:
            raise Conflict(
                f"actions[{i}]: this {p.action_type} for external_id {p.external_id!r} was already "
                "rejected; a rejected action stays rejected (nothing in the list was stored)"
            )
