"""Names of the evidence counters (`EvidenceCount.metric`) and a reader for them.

Writers (the services that record a fact) call `deployments.services.evidence_add` in the
same transaction as the fact; the gate, breakers and dashboards read only these counters.

| metric | written when | `total` holds |
|---|---|---|
| `proposed.<route>` | an action is proposed (route shadow/auto/review/senior) | |
| `decision.<verb>` | a person decides (approve, edit, reject, escalate) or the clock expires it | seconds to decide |
| `sla.within` / `sla.breached` | a pending action is approved or rejected, inside or past its SLA | |
| `counterfactual.auto` | an approval-stage action that stage 3 would have auto-executed is decided | |
| `counterfactual.auto_changed` | ... and the human edited or rejected it | |
| `execution.<executed|failed>.<route>` | the agent reports a result (or reconciles an unknown one as committed) | |
| `lifecycle.<event>` | issue 15 (no gate reads them): claimed, unknown, not_committed, cancelled, deadline | |
| `shadow.agree` / `shadow.disagree` | a shadow action is compared with the human outcome (see below) | |
| `shadow.adjudicated.<verdict>` | a reviewer adjudicates a shadow disagreement (informational) | |
| `audit.correct` / `audit.incorrect` | a senior gives an audit verdict on an auto-executed sample | |

Shadow counters count *effective* agreement, on the day the action was proposed: a
disagreement adjudicated "AI right" or "both acceptable" moves one count from
`shadow.disagree` to `shadow.agree`, and a recompute under new rules moves the counts whose
verdict changed, so agree + disagree always equals the compared pairs. The verdicts are
`ai_right`, `human_right`, `both_acceptable` (reviews/shadow/services.py).
"""

from collections import defaultdict
from datetime import date

from django.db.models import Sum

from deployments.models import EvidenceCount


def evidence_totals(
    *, deployment_id: int, since: date | None = None, metric_prefix: str = ""
) -> dict[tuple[str, str], int]:
    """{(action_type, metric): n} summed over days >= since (all days when None)."""
    qs = EvidenceCount.objects.filter(deployment_id=deployment_id)
    if since is not None:
        qs = qs.filter(day__gte=since)
    if metric_prefix:
        qs = qs.filter(metric__startswith=metric_prefix)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for row in qs.values("action_type", "metric").annotate(n_sum=Sum("n")):
        totals[(row["action_type"], row["metric"])] += row["n_sum"]
    return dict(totals)
