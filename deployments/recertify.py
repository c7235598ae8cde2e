"""Re-certification (issue 16 item 6): the gate that led into the current stage, evaluated
again every day over the stage's recent evidence.

The criteria are those of the promotion *into* the current stage (`criteria_for(deployment,
stage)`), computed by the gate's own criterion functions over the counters of the last
RECERTIFY_DAYS days (not before the stage began). Only a criterion that *fails* — enough data,
and the measured bound on the wrong side — counts as "stopped holding"; one without enough
data (e.g. shadow agreement, which stage 2 no longer measures, or the 2→3 counterfactual,
which stage 3 no longer writes) is reported but never demotes. When the stage stops holding,
an audit event records it, admins are told (the daily task mails them) and the deployment
page shows it; a deployment that opted in (`recertify_demote`) is demoted one stage by the
system, audited with the failed criteria as the reason. Stage 1 has no gate into it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from deployments.counters import counters_sum
from deployments.gate import (
    FAILED,
    _approval_to_supervised,
    _Counts,
    _shadow_to_approval,
    _supervised_to_autonomous,
    criteria_for,
)
from deployments.locks import deployment_lock
from deployments.models import Deployment
from deployments.policy import STAGE_ORDER, Stage
from deployments.services import audit_event_record
from deployments.services.promotion import _cancel_open_requests, _set_stage

RECERTIFY_DAYS = 30


@dataclass(frozen=True)
class Recertification:
    holds: bool
    failed: list[str]  # labels of the criteria that fail
    result: dict[str, Any]  # as stored on the deployment and shown on its page


def recertification_evaluate(*, deployment: Deployment, now: datetime | None = None) -> Recertification:
    """The current stage's own gate over its recent evidence. Pure read."""
    now = now or timezone.now()
    stage = Stage(deployment.stage)
    since = max(deployment.stage_entered_at, now - timedelta(days=RECERTIFY_DAYS))
    result: dict[str, Any] = {"evaluated_at": now.isoformat(), "stage": stage.value, "since": since.isoformat()}
    if stage is Stage.SHADOW:
        return Recertification(holds=True, failed=[], result={**result, "holds": True, "criteria": []})
    counts = _Counts(counters_sum(by="action_type", deployment_id=deployment.pk, since=since.date()))
    values = criteria_for(deployment, stage)
    days = (now - since).total_seconds() / 86400
    if stage is Stage.APPROVAL:
        criteria = _shadow_to_approval(counts, values, days)
    elif stage is Stage.SUPERVISED:
        criteria = _approval_to_supervised(counts, values, days)
    else:
        criteria = _supervised_to_autonomous(deployment, counts, values, now)
    failed = [c.label for c in criteria if c.status == FAILED]
    result.update(
        holds=not failed,
        failed=failed,
        criteria=[{"label": c.label, "status": c.status, "value": c.value, "detail": c.detail} for c in criteria],
    )
    return Recertification(holds=not failed, failed=failed, result=result)


@transaction.atomic
def deployment_recertify(*, deployment_id: int, now: datetime | None = None) -> Recertification:
    """Re-certify one deployment now (the daily task): store the result on it; when the stage
    stops holding (it held, or was never checked, before), audit it
    (`deployments.recertification.failed`) and, if the deployment opted in, demote it one stage
    (`deployments.stage.demoted`, actor "system", reason: the failed criteria). Safe to repeat:
    a stage that already failed is not audited or demoted again — a demotion starts a new
    stage, whose own gate is checked from then on. Returns the check; `result["newly_failed"]`
    says whether this run found the failure (the task tells the admins then)."""
    deployment = deployment_lock(deployment_id)
    check = recertification_evaluate(deployment=deployment, now=now)
    last = deployment.recertification or {}
    # A failure is news once per stage: after a demotion, the new stage starts afresh.
    was_holding = last.get("holds", True) or last.get("stage") != deployment.stage
    demoted_to = None
    if not check.holds and was_holding:
        reason = "re-certification failed: " + "; ".join(check.failed)
        audit_event_record(
            verb="deployments.recertification.failed", deployment=deployment, obj=deployment, reason=reason,
            data=check.result,
        )  # fmt: skip
        if deployment.recertify_demote:
            current = Stage(deployment.stage)
            demoted_to = STAGE_ORDER[current.rank - 1]
            _set_stage(deployment, "", demoted_to, timezone.now())
            _cancel_open_requests(deployment, None, None, f"demoted to {demoted_to.value} by re-certification")
            audit_event_record(
                verb="deployments.stage.demoted",
                deployment=deployment,
                obj=deployment,
                reason=reason,
                data={
                    "from": current.value,
                    "to": demoted_to.value,
                    "action_type": "",
                    "recertification": check.result,
                },
            )
    result = {**check.result, **({"demoted_to": demoted_to.value} if demoted_to else {})}
    newly_failed = not check.holds and was_holding
    Deployment.objects.filter(pk=deployment.pk).update(recertification=result)
    return Recertification(holds=check.holds, failed=check.failed, result={**result, "newly_failed": newly_failed})
