"""Every write to deployments, keys, members, evidence counters and the audit log, by subdomain:

| module | writes |
|---|---|
| `audit` | the audit log (`audit_event_record`), and the reason a change must give |
| `deployment` | creating a deployment; the kill switch (pause, resume) |
| `api_keys` | API keys, and authenticating a bearer key with the process's key cache |
| `members` | people, their role and assigned deployments |
| `blast_radius` | the rolling auto-execution budget |
| `breakers` | tripping, checking and resetting the circuit breaker |
| `promotion` | promotion requests (four-eyes), approval, rejection, demotion |
| `deployments.counters` | the evidence counters (re-exported here: they are written like any service) |

`from deployments.services import X` works for every one of them.
"""

from deployments.counters import (
    CounterDelta,
    breaker_counts_fold,
    breaker_counts_purge,
    counters_add,
    counters_add_many,
    evidence_add,
    evidence_counts_fold,
    evidence_deltas,
)
from deployments.services.api_keys import (
    api_key_authenticate,
    api_key_confirm,
    api_key_create,
    api_key_mark_used,
    api_key_revoke,
)
from deployments.services.audit import SYSTEM, audit_event_build, audit_event_record, reason_required
from deployments.services.blast_radius import blast_radius_purge, blast_radius_reserve
from deployments.services.breakers import breaker_check, breaker_reset, breaker_trip
from deployments.services.deployment import deployment_create, deployment_pause, deployment_resume, new_webhook_secret
from deployments.services.members import member_create
from deployments.services.promotion import (
    deployment_demote,
    deployment_promotion_approve,
    deployment_promotion_reject,
    deployment_promotion_request,
)

__all__ = [
    "SYSTEM",
    "CounterDelta",
    "api_key_authenticate",
    "api_key_confirm",
    "api_key_create",
    "api_key_mark_used",
    "api_key_revoke",
    "audit_event_build",
    "audit_event_record",
    "blast_radius_purge",
    "blast_radius_reserve",
    "breaker_check",
    "breaker_counts_fold",
    "breaker_counts_purge",
    "breaker_reset",
    "breaker_trip",
    "counters_add",
    "counters_add_many",
    "deployment_create",
    "deployment_demote",
    "deployment_pause",
    "deployment_promotion_approve",
    "deployment_promotion_reject",
    "deployment_promotion_request",
    "deployment_resume",
    "evidence_add",
    "evidence_counts_fold",
    "evidence_deltas",
    "member_create",
    "new_webhook_secret",
    "reason_required",
]
