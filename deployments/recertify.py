"""Re-certification (SPEC §8): does the gate that let a deployment into its stage still hold?

Every day (beat: `deployments.recertify_all`) the criteria of the gate that led into the
current stage are evaluated again, over the last RECERTIFY_DAYS days spent in that stage,
with the evidence the current stage produces standing in for what the gate measured before:

| stage | gate re-checked | evidence read |
|---|---|---|
| approval | 1→2 | AI–human agreement := approved unchanged / (approved + edited + rejected) |
| supervised | 2→3 | decisions as they are; "would auto-execute" := audited auto-executions, "changed" := incorrect |
| autonomous | 3→4 | as they are (executions, audits, breaker trips, SLA) |

Only a criterion whose evidence says *no* counts (`failed`: a rate's whole 95% interval on
the wrong side, a breaker trip, the SLA share too low). Minimum counts and days in stage are
about gathering evidence, not about it holding, and are left out; too little evidence is
`insufficient`, never a failure. When the check turns from holding to failed, it is audited
and admins are told (after commit); a deployment with `recertify_demotes` is then demoted one
stage, audited with the failed criteria as its reason. Shadow has no gate behind it.
"""

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.tasks import enqueue_on_commit
from core.updates import model_update
from deployments.counters import DEPLOYMENT_WIDE, Counts, Metric, counters_sum
from deployments.gate import FAILED, _Counts, criteria_for, gate_criteria_into
from deployments.locks import deployment_lock
from deployments.models import Deployment
from deployments.policy import STAGE_ORDER, Stage
from deployments.services import audit_event_record
from deployments.services.promotion import deployment_demote_locked

RECERTIFY_DAYS = 30
HOLDS, FAILS, INSUFFICIENT = "holds", "failed", "insufficient"
# Criteria about gathering evidence, not about it holding.
NOT_RECHECKED = {"compared_pairs", "human_decisions", "counterfactual_auto", "auto_executions", "audit_samples"}
NOT_RECHECKED |= {"days_in_stage"}


def _as_entering_gate(stage: Stage, counts: Counts) -> Counts:
    """The current stage's counters as the gate into it counted them (see the table above)."""
    mapped = Counts(dict(counts.n), dict(counts.totals))
    if stage is Stage.APPROVAL:
        mapped.n[Metric.SHADOW_AGREE] = counts[Metric.DECISION_APPROVE]
        mapped.n[Metric.SHADOW_DISAGREE] = counts[Metric.DECISION_EDIT] + counts[Metric.DECISION_REJECT]
    elif stage is Stage.SUPERVISED:
        mapped.n[Metric.COUNTERFACTUAL_AUTO] = counts[Metric.AUDIT_CORRECT] + counts[Metric.AUDIT_INCORRECT]
        mapped.n[Metric.COUNTERFACTUAL_AUTO_CHANGED] = counts[Metric.AUDIT_INCORRECT]
    return mapped


def recertification_evaluate(*, deployment: Deployment, now: datetime | None = None) -> dict[str, Any]:
    """The re-certification of the deployment's current stage, now. Pure read."""
    now = now or timezone.now()
    stage = Stage(deployment.stage)
    start = max(deployment.stage_entered_at, now - timedelta(days=RECERTIFY_DAYS))
    result: dict[str, Any] = {
        "evaluated_at": now.isoformat(),
        "evaluated_on": timezone.localdate(now).isoformat(),
        "stage": stage.value,
        "window_start": start.isoformat(),
        "outcome": HOLDS,
        "criteria": [],
        "failed": [],
    }
    if stage is Stage.SHADOW:
        result["detail"] = "shadow has no gate behind it"
        return result
    by_type = counters_sum(by="action_type", deployment_id=deployment.pk, since=start.date())
    counts = _Counts(
        {t: _as_entering_gate(stage, c) for t, c in by_type.items() if t != DEPLOYMENT_WIDE},
    )
    values = criteria_for(deployment, stage)
    days = (now - deployment.stage_entered_at).total_seconds() / 86400
    criteria = gate_criteria_into(deployment, stage, counts, values, days, now)
    checked = [c for c in criteria if c.name not in NOT_RECHECKED]
    result["criteria"] = [c.as_dict() for c in checked]
    result["failed"] = [c.as_dict() for c in checked if c.status == FAILED]
    if result["failed"]:
        result["outcome"] = FAILS
    elif not all(c.met for c in checked):
        result["outcome"] = INSUFFICIENT
    return result


def _reason(result: dict[str, Any]) -> str:
    parts = []
    for c in result["failed"]:
        value = "—" if c["value"] is None else f"{c['value']:.4g}"
        bounds = f" [{c['lower']:.4g}, {c['upper']:.4g}]" if c["lower"] is not None else ""
        parts.append(f"{c['name']}: {value}{bounds} (threshold {c['threshold']}, n {c['n']})")
    return f"re-certification of {result['stage']} failed: " + "; ".join(parts)


@transaction.atomic
def deployment_recertify(*, deployment_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Re-certify one deployment's current stage and store the result on it.

    Takes the deployment's row lock. When the check turns to failed (it held, or was never
    failed before), the event is audited and admins are told after commit; with
    `recertify_demotes` the deployment is demoted one stage (audited, the failed criteria as
    the reason). Safe to repeat: a second run on the same day changes nothing.
    """
    deployment = deployment_lock(deployment_id)
    now = now or timezone.now()
    previous = deployment.recertification or {}
    if previous.get("evaluated_on") == timezone.localdate(now).isoformat():
        return previous  # once a day: and a demotion today is not followed by a second one

    result = recertification_evaluate(deployment=deployment, now=now)
    newly_failed = result["outcome"] == FAILS and not (
        previous.get("outcome") == FAILS and previous.get("stage") == result["stage"]
    )
    if newly_failed:
        reason = _reason(result)
        event = audit_event_record(
            verb="deployments.recertification.failed",
            obj=deployment,
            reason=reason,
            data={"recertification": result, "demotes": deployment.recertify_demotes},
        )
        enqueue_on_commit("deployments.recertification_notify", deployment.pk, event.pk, robust=True)
        stage = Stage(deployment.stage)
        if deployment.recertify_demotes and stage.rank > Stage.SHADOW.rank:
            lower = STAGE_ORDER[stage.rank - 1]
            deployment_demote_locked(
                deployment=deployment, to_stage=lower, reason=reason, data={"recertification": result}
            )
            result["demoted_to"] = lower.value
    model_update(deployment, recertification=result)
    return result
