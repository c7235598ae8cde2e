"""Sixty days of believable history for the demo, written in bulk.

The rows are the same ones the services would have written (actions, decisions, audit events,
evidence counters), generated in memory and inserted with bulk_create so the demo loads in
seconds even on SQLite. Deterministic for a given seed.
"""

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from deployments.counters import Metric
from deployments.models import AuditEvent, Deployment, EvidenceCount
from deployments.policy import Route, Stage, route_for
from reviews.canonical import payload_sha256
from reviews.models import Decision, ProposedAction
from reviews.shadow.compare import Rules, compare
from reviews.shadow.models import ShadowOutcome, ShadowTally

S = ProposedAction.Status


@dataclass
class Story:
    """How one demo deployment lived: its stage timeline (days ago it entered each stage)."""

    slug: str
    per_day: int
    types: list[str]
    timeline: list[tuple[int, Stage]]  # (days ago, stage entered), oldest first
    agreement: float = 0.93  # shadow: how often the AI matched the human
    failure_rate: float = 0.004
    counters: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))

    def stage_on(self, days_ago: float) -> Stage:
        stage = self.timeline[0][1]
        for started, s in self.timeline:
            if days_ago <= started:
                stage = s
        return stage


STORIES = [
    Story("support-triage", 150, ["ticket.route", "ticket.tag", "ticket.close"], [(60, Stage.SHADOW)], agreement=0.91),
    Story("refunds", 60, ["refund.issue", "refund.deny"], [(60, Stage.SHADOW), (31, Stage.APPROVAL)]),
    Story(
        "invoice-matching",
        110,
        ["invoice.match", "invoice.flag"],
        [(60, Stage.SHADOW), (45, Stage.APPROVAL), (21, Stage.SUPERVISED)],
    ),
    Story(
        "password-resets",
        140,
        ["account.password_reset", "account.unlock"],
        [(60, Stage.SHADOW), (52, Stage.APPROVAL), (38, Stage.SUPERVISED), (17, Stage.AUTONOMOUS)],
        failure_rate=0.002,
    ),
]


def payload_for(action_type: str, rng: random.Random) -> dict:
    n = rng.randint(10000, 99999)
    if action_type.startswith("refund"):
        return {
            "order": f"ORD-{n}",
            "amount_cents": rng.choice([499, 1299, 2599, 4500, 12000, 38000, 80000]),
            "currency": "EUR",
            "reason": rng.choice(["damaged", "late delivery", "wrong size", "not as described"]),
        }
    if action_type.startswith("invoice"):
        return {
            "invoice": f"INV-{n}",
            "purchase_order": f"PO-{n // 7}",
            "supplier": rng.choice(["Acme GmbH", "Globex Ltd", "Initech SA", "Umbrella BV"]),
            "amount_cents": rng.randint(5_000, 2_500_000),
        }
    if action_type.startswith("ticket"):
        return {
            "ticket": f"T-{n}",
            "queue": rng.choice(["billing", "technical", "sales", "returns"]),
            "priority": rng.choice(["low", "normal", "high"]),
            "tags": rng.sample(["refund", "login", "invoice", "shipping", "bug", "vip"], 2),
        }
    return {"account": f"user{n}@example.com", "channel": rng.choice(["email", "sms"]), "verified_by": "otp"}


def _human_version(action_type: str, payload: dict, rng: random.Random) -> tuple[dict, dict]:
    """A plausible human disagreement: the payload a person chose, and the field diff."""
    changed = dict(payload)
    if "queue" in payload:
        changed["queue"] = rng.choice(
            [q for q in ["billing", "technical", "sales", "returns"] if q != payload["queue"]]
        )
        key = "queue"
    elif "amount_cents" in payload:
        changed["amount_cents"] = int(payload["amount_cents"] * rng.choice([0.5, 0.8]))
        key = "amount_cents"
    else:
        changed["channel"] = "email" if payload.get("channel") == "sms" else "sms"
        key = "channel"
    return changed, {key: {"ai": payload.get(key), "human": changed[key]}}


class HistoryBuilder:
    def __init__(self, *, deployments: dict[str, Deployment], reviewers: list, seniors: list, seed: int = 7):
        self.deployments = deployments
        self.reviewers = reviewers
        self.seniors = seniors
        self.rng = random.Random(seed)
        self.now = timezone.now()
        self.actions: list[ProposedAction] = []
        self.plans: list[tuple[ProposedAction, list[tuple]]] = []  # decisions to add after ids exist
        self.audit: list[AuditEvent] = []
        self.counters: dict[tuple, list] = defaultdict(lambda: [0, 0.0])
        self.outcomes: list[ShadowOutcome] = []  # shadow mode: what the humans did
        self.tally: dict[tuple, list] = defaultdict(lambda: [0, 0])

    def past(self, when: datetime, *, after: datetime) -> datetime:
        """`when`, or a moment in the last hour if it would be in the future: history never is.
        Never before `after` (what it follows)."""
        if when < self.now - timedelta(minutes=1):
            return when
        return max(after + timedelta(seconds=1), self.now - timedelta(seconds=self.rng.uniform(60, 3600)))

    def count(self, deployment: Deployment, when: datetime, action_type: str, metric: Metric, total: float = 0.0):
        key = (deployment.pk, when.date(), action_type, Metric(metric))
        self.counters[key][0] += 1
        self.counters[key][1] += total

    def build(self, days: int = 60, pending_today: int = 18, progress: Callable[[str], None] | None = None) -> dict:
        for number, story in enumerate(STORIES, 1):
            before = len(self.actions)
            deployment = self.deployments[story.slug]
            for day in range(days, 0, -1):
                weekday_factor = 0.55 if (self.now - timedelta(days=day)).weekday() >= 5 else 1.0
                for _ in range(int(story.per_day * weekday_factor * self.rng.uniform(0.85, 1.15))):
                    moment = self.now - timedelta(days=day) + timedelta(seconds=self.rng.uniform(0, 86400))
                    if moment > self.now - timedelta(hours=2):
                        continue
                    self._one(story, deployment, moment, decided=True)
            if story.stage_on(0) in (Stage.APPROVAL, Stage.SUPERVISED):
                for _ in range(pending_today):
                    moment = self.now - timedelta(minutes=self.rng.uniform(3, 110))
                    self._one(story, deployment, moment, decided=False)
            if progress:
                progress(f"  [{number}/{len(STORIES)}] {story.slug}: {len(self.actions) - before:,} actions")
        if progress:
            progress("  writing the rows ...")
        return self._write()

    def _one(self, story: Story, deployment: Deployment, moment: datetime, *, decided: bool) -> None:
        rng = self.rng
        stage = story.stage_on((self.now - moment).total_seconds() / 86400)
        action_type = rng.choice(story.types)
        payload = payload_for(action_type, rng)
        risk = round(rng.betavariate(2, 6), 3)
        confidence = round(min(0.999, rng.betavariate(16, 1.1)), 3)
        route = route_for(stage=stage, thresholds=deployment.thresholds, risk=risk, confidence=confidence)
        digest = payload_sha256(payload)
        action = ProposedAction(
            deployment=deployment,
            action_type=action_type,
            external_id=f"{story.slug}-{len(self.actions)}",
            payload=payload,
            proposal_sha256=digest,
            risk_score=risk,
            confidence=confidence,
            model_version=rng.choice(["v3.1", "v3.2"]) if moment > self.now - timedelta(days=25) else "v3.0",
            rationale="Matched on order history and policy.",
            stage=stage.value,
            route=route.value,
            created_at=moment,
        )
        self.count(deployment, moment, action_type, Metric.of("proposed", route))
        plan: list[tuple] = []
        if route is Route.SHADOW:
            agree = rng.random() < story.agreement
            human, _ = (payload, {}) if agree else _human_version(action_type, payload, rng)
            # The outcome the human process reported, and the comparison a worker made of it.
            self.outcomes.append(
                ShadowOutcome(
                    deployment=deployment,
                    external_id=action.external_id,
                    action_type=action_type,
                    payload=human,
                    decided_by=rng.choice(["ann", "bo", "chen", "dana"]),
                    decided_at=self.past(moment + timedelta(minutes=rng.uniform(5, 240)), after=moment),
                )
            )
            action.status = S.COMPARED
            action.comparison = compare(
                ai_type=action_type, ai_payload=payload, human_type=action_type, human_payload=human, rules=Rules()
            )
            agree = action.comparison["agree"]
            self.count(deployment, moment, action_type, Metric.SHADOW_AGREE if agree else Metric.SHADOW_DISAGREE)
            tally = self.tally[(deployment.pk, moment.date(), action_type, action_type, action.model_version)]
            tally[0 if agree else 1] += 1
        elif route is Route.AUTO:
            action.status, action.final_payload, action.payload_sha256 = S.APPROVED, payload, digest
            action.decided_at = moment
            action.audit_sample = rng.random() < deployment.audit_sample_rate
            self._execute(story, deployment, action, moment)
            if action.audit_sample and decided and rng.random() < 0.8:
                ok = rng.random() < 0.985
                action.audit_verdict = "correct" if ok else "incorrect"
                when = self.past(moment + timedelta(hours=rng.uniform(1, 30)), after=action.executed_at)
                plan.append(("audit_correct" if ok else "audit_incorrect", rng.choice(self.seniors), when, "", None))
                self.count(deployment, when, action_type, Metric.AUDIT_CORRECT if ok else Metric.AUDIT_INCORRECT)
        else:
            sla = deployment.review_sla if route is Route.REVIEW else deployment.senior_sla
            action.status = S.PENDING_REVIEW if route is Route.REVIEW else S.PENDING_SENIOR
            action.expires_at = moment + sla
            if decided:
                plan = self._decide(story, deployment, action, moment)
        self.actions.append(action)
        self.plans.append((action, plan))

    def _execute(self, story: Story, deployment: Deployment, action: ProposedAction, moment: datetime) -> None:
        failed = self.rng.random() < story.failure_rate
        action.status = S.FAILED if failed else S.EXECUTED
        action.executed_at = self.past(moment + timedelta(seconds=self.rng.uniform(1, 30)), after=moment)
        action.result_error = "upstream API answered 503" if failed else ""
        self.count(
            deployment, action.executed_at, action.action_type, Metric.of("execution", action.status, action.route)
        )

    def _decide(self, story: Story, deployment: Deployment, action: ProposedAction, moment: datetime) -> list[tuple]:
        rng = self.rng
        plan = []
        at = moment
        if action.status == S.PENDING_REVIEW and rng.random() < 0.03:
            at = self.past(at + timedelta(minutes=rng.uniform(2, 90)), after=moment)
            plan.append(("escalate", rng.choice(self.reviewers), at, "Amount looks unusual; second opinion.", None))
            self.count(deployment, at, action.action_type, Metric.DECISION_ESCALATE, (at - moment).total_seconds())
            action.status = S.PENDING_SENIOR
            action.expires_at = at + deployment.senior_sla
        people = self.seniors if action.status == S.PENDING_SENIOR else self.reviewers + self.seniors
        roll = rng.random()
        easy = (
            route_for(
                stage=Stage.SUPERVISED,
                thresholds=deployment.thresholds,
                risk=action.risk_score,
                confidence=action.confidence,
            )
            is Route.AUTO
        )
        if easy:
            # The cases stage 3 would auto-execute are the model's easy ones: people rarely change them.
            roll = 0.095 + (1 - 0.095) * roll if rng.random() > 0.05 else roll
        when = self.past(at + timedelta(minutes=rng.lognormvariate(3.2, 0.9)), after=at)
        seconds = (when - at).total_seconds()
        if roll < 0.004 and action.expires_at <= self.now:
            verb, action.status, action.reason = "expire", S.EXPIRED, "SLA passed without a decision"
            when = action.expires_at
        elif roll < 0.035:
            verb, action.status = "reject", S.REJECTED
            action.reason = rng.choice(["Duplicate of an earlier refund.", "Outside the return window.", "Wrong PO."])
        elif roll < 0.095:
            verb = "edit"
            edited, _ = _human_version(action.action_type, action.payload, rng)
            action.status, action.final_payload, action.payload_sha256 = S.APPROVED, edited, payload_sha256(edited)
        else:
            verb = "approve"
            action.status, action.final_payload = S.APPROVED, action.payload
            action.payload_sha256 = action.proposal_sha256
        action.decided_at = when
        plan.append((verb, None if verb == "expire" else rng.choice(people), when, action.reason, None))
        self.count(deployment, when, action.action_type, Metric.of("decision", verb), seconds)
        if verb != "expire":
            self.count(
                deployment,
                when,
                action.action_type,
                Metric.SLA_WITHIN if when <= action.expires_at else Metric.SLA_BREACHED,
            )
        if action.stage == Stage.APPROVAL and verb != "expire":
            would = route_for(
                stage=Stage.SUPERVISED,
                thresholds=deployment.thresholds,
                risk=action.risk_score,
                confidence=action.confidence,
            )
            if would is Route.AUTO:
                self.count(deployment, when, action.action_type, Metric.COUNTERFACTUAL_AUTO)
                if verb != "approve":
                    self.count(deployment, when, action.action_type, Metric.COUNTERFACTUAL_AUTO_CHANGED)
        if action.status == S.APPROVED:
            self._execute(story, deployment, action, when)
        return plan

    def _write(self) -> dict:
        ProposedAction.objects.bulk_create(self.actions, batch_size=2000)
        decisions, audit = [], []
        verbs = {
            "approve": "reviews.action.approved",
            "edit": "reviews.action.edited_and_approved",
            "reject": "reviews.action.rejected",
            "escalate": "reviews.action.escalated",
            "expire": "reviews.action.expired",
            "audit_correct": "reviews.action.audit_verdict",
            "audit_incorrect": "reviews.action.audit_verdict",
        }
        for action, plan in self.plans:
            audit.append(
                AuditEvent(
                    verb="reviews.action.auto_approved" if action.route == "auto" else "reviews.action.proposed",
                    actor_label="agent",
                    deployment_id=action.deployment_id,
                    object_type="reviews.proposedaction",
                    object_id=str(action.pk),
                    data={"route": action.route, "stage": action.stage, "risk_score": action.risk_score},
                    created_at=action.created_at,
                )
            )
            previous = None
            for verb, actor, when, reason, _ in plan:
                actor_obj: AbstractBaseUser | None = actor
                decisions.append(
                    Decision(
                        action_id=action.pk,
                        verb=verb,
                        actor=actor_obj,
                        from_status=previous or ("pending_review" if action.route == "review" else "pending_senior"),
                        to_status=action.status,
                        reason=reason or "",
                        seconds_to_decide=(when - action.created_at).total_seconds(),
                        created_at=when,
                    )
                )
                audit.append(
                    AuditEvent(
                        verb=verbs[verb],
                        actor=actor_obj,
                        actor_label=actor_obj.get_username() if actor_obj else "system",
                        deployment_id=action.deployment_id,
                        object_type="reviews.proposedaction",
                        object_id=str(action.pk),
                        reason=reason or "",
                        created_at=when,
                    )
                )
                previous = "pending_senior" if verb == "escalate" else previous
        Decision.objects.bulk_create(decisions, batch_size=2000)
        AuditEvent.objects.bulk_create(audit, batch_size=2000)
        EvidenceCount.objects.bulk_create(
            [
                EvidenceCount(deployment_id=d, day=day, action_type=t, metric=m, shard=0, n=v[0], total=v[1])
                for (d, day, t, m), v in self.counters.items()
            ],
            batch_size=2000,
        )
        ShadowOutcome.objects.bulk_create(self.outcomes, batch_size=2000)
        ShadowTally.objects.bulk_create(
            [
                ShadowTally(
                    deployment_id=d, day=day, action_type=t, human_action_type=h, model_version=v, agree=a, disagree=n
                )
                for (d, day, t, h, v), (a, n) in self.tally.items()
            ],
            batch_size=2000,
        )
        return {"actions": len(self.actions), "decisions": len(decisions), "audit_events": len(audit)}
