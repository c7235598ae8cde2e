"""Reads that pages and the API need."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from core.jsonlimits import MAX_DEPTH, json_display
from deployments.models import AuditEvent, Deployment, Member
from deployments.permissions import limit_to_visible, member_reach
from deployments.templatetags.ui import event_actor, verb_words
from reviews.claims import QUEUES, claim_is_live, member_deployment_ids
from reviews.models import Decision, ProposedAction
from reviews.state import DONE_WORDS

# Senior and audit queues are for seniors (and admins) only.
SENIOR_QUEUES = ("senior", "audit")
PAGE_SIZE = 50
NEWEST_FIRST = ("audit",)  # queues listed newest first
# The nav shows "1000+" past this: counting is bounded, never a COUNT(*) over a whole queue.
COUNT_CAP = 1000


def action_get_for_deployment(*, deployment: Deployment, action_id: int) -> ProposedAction:
    """One action of this deployment; 404 for any other deployment's action (no oracle)."""
    # Fire drills (reviews/humans/drills.py) never reach an agent: not even by id.
    action = (
        ProposedAction.objects.filter(pk=action_id, deployment=deployment)
        .exclude(review_sample="drill")
        .select_related("run")
        .first()
    )
    if action is None:
        raise Http404(f"no action {action_id} in this deployment")
    action.deployment = deployment
    return action


def _later_in_queue(qs: QuerySet[ProposedAction], queue: str, created_at: datetime, pk: int):
    """The rows after (created_at, pk) in `queue`'s order (the audit queue runs newest first)."""
    return qs.before(created_at, pk) if queue in NEWEST_FIRST else qs.after(created_at, pk)


def cursor_encode(action: ProposedAction) -> str:
    return f"{action.created_at.isoformat()}~{action.pk}"


def cursor_decode(raw: str) -> tuple[datetime, int] | None:
    """(created_at, id) of a cursor, or None when it is missing or malformed."""
    if not raw or "~" not in raw:
        return None
    stamp, _, pk = raw.rpartition("~")
    try:
        created_at, pk_value = datetime.fromisoformat(stamp.replace(" ", "+")), int(pk)
        # In UTC: PostgreSQL refuses offsets past ±15:59, which Python allows up to ±23:59.
        created_at = created_at.astimezone(UTC) if created_at.tzinfo else None
    except (ValueError, OverflowError):
        return None
    return (created_at, pk_value) if created_at and 0 <= pk_value < 2**63 else None


@dataclass
class QueueRow:
    action: ProposedAction
    summary: str
    claimed_by_other: bool
    claimed_by_me: bool
    escalated_by: str = ""  # senior queue: who escalated it (its reason is the action's)


@dataclass
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str
    deployments: list[Deployment]


def queue_page(
    *,
    member: Member,
    queue: str,
    deployment_id: int | None = None,
    action_type: str = "",
    cursor: str = "",
    limit: int | None = None,
) -> QueuePage:
    """One page of a queue, keyset-paged on (created_at, id): two queries whatever the table size.

    No OFFSET and no COUNT: the page reads `limit + 1` rows to know whether there is a next one.
    """
    limit = limit or PAGE_SIZE
    reach = member_reach(member)  # their own deployments and a delegation's (deployments.permissions)
    deployment_ids = reach.ids(queue)
    if deployment_ids is None:
        deployments = list(Deployment.objects.only("id", "slug", "name"))
    else:  # the picker's names came with the reach: no query
        named = sorted((reach.names[i][0], i, reach.names[i][1]) for i in deployment_ids)
        deployments = [Deployment(pk=i, slug=slug, name=name) for slug, i, name in named]
    qs = ProposedAction.objects.queue_items(
        queue, deployment_ids=deployment_ids, deployment_id=deployment_id, action_type=action_type
    )
    position = cursor_decode(cursor)
    if position is not None:
        qs = _later_in_queue(qs, queue, *position)
    actions = list(
        qs.select_related("deployment", "claimed_by", "run").defer(
            "rationale", "comparison", "final_payload", "callback_url", "result_error"
        )[: limit + 1]
    )
    next_cursor = cursor_encode(actions[limit - 1]) if len(actions) > limit else ""
    now = timezone.now()
    rows = []
    for action in actions[:limit]:
        live = claim_is_live(action, now)
        rows.append(
            QueueRow(
                action=action,
                summary=payload_summary(action.payload),
                claimed_by_other=live and action.claimed_by_id != member.user_id,
                claimed_by_me=live and action.claimed_by_id == member.user_id,
            )
        )
    if queue == "senior" and rows:
        escalations = Decision.objects.filter(action_id__in=[r.action.pk for r in rows], verb="escalate")
        who = dict(escalations.values_list("action_id", "actor__username"))
        for row in rows:
            row.escalated_by = who.get(row.action.pk) or ""
    return QueuePage(rows=rows, next_cursor=next_cursor, deployments=deployments)


def queue_counts(*, member: Member, cap: int = COUNT_CAP) -> dict[str, int]:
    """Items per queue the member may work, each count bounded by `cap` (read over the
    queue's partial index, LIMIT cap). Reviewers get only the reviewer queue."""
    reach = member_reach(member)
    counts = {}
    for queue in (q for q in QUEUES if reach.works(q)):
        qs = ProposedAction.objects.queue_items(queue, deployment_ids=reach.ids(queue)).order_by()
        counts[queue] = qs.values("id")[:cap].count()
    return counts


def action_get_visible(*, member: Member, action_id: int) -> ProposedAction:
    """The action if the member is assigned to its deployment (admins: any); else 404, so
    another deployment's actions are not even confirmed to exist."""
    qs = ProposedAction.objects.select_related("deployment", "claimed_by", "run", "parent").filter(pk=action_id)
    action = limit_to_visible(qs, member).first()
    if action is None:
        raise Http404("no such action")
    return action


def action_neighbours(
    *, action: ProposedAction, member: Member, queue: str
) -> tuple[ProposedAction | None, ProposedAction | None]:
    """The items before and after `action` in its queue (for j/k on the detail page)."""
    qs = ProposedAction.objects.queue_items(queue, deployment_ids=member_deployment_ids(member, queue)).only("id")
    following = _later_in_queue(qs, queue, action.created_at, action.pk).first()
    if queue in NEWEST_FIRST:
        previous = qs.after(action.created_at, action.pk).order_by("created_at", "id").first()
    else:
        previous = qs.before(action.created_at, action.pk).order_by("-created_at", "-id").first()
    return previous, following


@dataclass
class HistoryEntry:
    at: datetime
    who: str
    what: str
    reason: str
    detail: dict


# Audit verbs that only repeat a Decision row: the history shows the decision once.
DECISION_AUDIT_VERBS = frozenset(
    {
        "reviews.action.auto_approved",
        "reviews.action.approved",
        "reviews.action.edited_and_approved",
        "reviews.action.rejected",
        "reviews.action.escalated",
        "reviews.action.expired",
        "reviews.action.audit_verdict",
    }
)
STATUS_WORDS = dict(ProposedAction.Status.choices)


def _status(value: str) -> str:
    return str(STATUS_WORDS.get(value, value)).lower()


def action_history(action: ProposedAction) -> list[HistoryEntry]:
    """What happened to the action, oldest first, in words: each decision once (its audit
    event repeats it), then the other audit events (proposal, execution, deliveries, …)."""
    decisions = list(Decision.objects.filter(action=action).select_related("actor", "on_behalf_of"))
    entries = [
        HistoryEntry(
            at=d.created_at,
            who=(d.actor.get_username() if d.actor else "Trustladder (automatic)")
            + (f" for {d.on_behalf_of.get_username()}" if d.on_behalf_of else ""),
            what=f"{DONE_WORDS.get(d.verb, d.get_verb_display())} ({_status(d.from_status)} → {_status(d.to_status)})",
            reason=d.reason,
            detail={"seconds_to_decide": round(d.seconds_to_decide, 1)} if d.seconds_to_decide is not None else {},
        )
        for d in decisions
    ]
    events = AuditEvent.objects.filter(object_type=ProposedAction._meta.label_lower, object_id=str(action.pk)).order_by(
        "created_at", "id"
    )
    if decisions:
        events = events.exclude(verb__in=DECISION_AUDIT_VERBS)
    entries += [
        HistoryEntry(at=e.created_at, who=event_actor(e), what=verb_words(e.verb), reason=e.reason, detail=e.data)
        for e in events
    ]
    entries.sort(key=lambda e: e.at)
    return entries


def payload_summary(payload: Any, width: int = 120) -> str:
    """One line: the payload's top-level fields as `key=value`, shortened to `width`."""
    if isinstance(payload, dict):
        parts = []
        for key, value in payload.items():
            text = value if isinstance(value, str) else json_display(value, indent=None)
            parts.append(f"{key}={text}")
        line = " · ".join(parts)
    else:
        line = json_display(payload, indent=None)
    line = " ".join(line.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _flatten(value: Any, path: str = "", depth: int = 0) -> dict[str, Any]:
    # Past the input limit (a payload stored before it) the rest is one leaf: no recursion error.
    if isinstance(value, dict) and value and depth < MAX_DEPTH:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{path}.{key}" if path else str(key), depth + 1))
        return flat
    if isinstance(value, list) and value and depth < MAX_DEPTH:
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{path}[{index}]", depth + 1))
        return flat
    return {path or "(root)": value}


@dataclass
class DiffLine:
    path: str
    change: str  # "added", "removed", "changed"
    before: str
    after: str


def payload_diff(before: Any, after: Any) -> list[DiffLine]:
    """Field-by-field difference of two JSON values, by dotted path."""
    old, new = _flatten(before), _flatten(after)

    def show(value: Any) -> str:
        return json_display(value, indent=None)

    lines = []
    for path in sorted(set(old) | set(new)):
        if path not in new:
            lines.append(DiffLine(path, "removed", show(old[path]), ""))
        elif path not in old:
            lines.append(DiffLine(path, "added", "", show(new[path])))
        elif old[path] != new[path] or type(old[path]) is not type(new[path]):
            lines.append(DiffLine(path, "changed", show(old[path]), show(new[path])))
    return lines
