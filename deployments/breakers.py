"""Circuit breakers of SPEC §3: reading the sliding window. The trip itself is a service
(`deployments.services.breaker_check` / `breaker_trip`).

The window is read from `BreakerCount`, minute buckets written beside the daily counters for
the few metrics the breakers watch (`deployments.counters.BREAKER_METRICS`). Why not the
actions table: the `deployments` app does not read `reviews` tables, and a sum over at most
60 minute rows per metric (times a few shards) costs the same at 10 or 10 million actions. Why not the daily
EvidenceCount: a day is far coarser than a one-hour window.

Hysteresis: the trip thresholds are far looser than the promotion criteria (a 5% failure rate
trips, where promotion needed a 95% upper bound of 1%), so a deployment that earned its
stage does not flap, and one that trips is clearly unwell.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from deployments.counters import BREAKER, Counts, Metric, counters_sum, minute_of
from deployments.models import Deployment
from deployments.validators import DEFAULT_BREAKER_SETTINGS


def settings_for(deployment: Deployment) -> dict[str, float]:
    """The default breaker settings with the deployment's overrides applied."""
    values = dict(DEFAULT_BREAKER_SETTINGS)
    values.update(deployment.breaker_settings or {})
    return values


@dataclass
class BreakerReading:
    """What the breaker saw in its windows, and why it would trip (empty `reasons`: fine)."""

    window_start: datetime
    executions: int = 0
    failures: int = 0
    audited: int = 0
    audit_incorrect: int = 0
    volume: int = 0
    baseline_per_window: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.executions if self.executions else None

    @property
    def audit_rejected_rate(self) -> float | None:
        return self.audit_incorrect / self.audited if self.audited else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start.isoformat(),
            "executions": self.executions,
            "failures": self.failures,
            "failure_rate": self.failure_rate,
            "audited": self.audited,
            "audit_incorrect": self.audit_incorrect,
            "audit_rejected_rate": self.audit_rejected_rate,
            "volume": self.volume,
            "baseline_per_window": self.baseline_per_window,
            "reasons": self.reasons,
        }


def _sums(deployment_id: int, start: datetime, end: datetime | None = None) -> Counts:
    until = minute_of(end) if end is not None else None
    return counters_sum(BREAKER, deployment_id=deployment_id, since=minute_of(start), until=until)


def breaker_reading(deployment: Deployment, now: datetime | None = None) -> BreakerReading:
    """Read the sliding windows and say whether the breaker should trip. Pure read.

    The windows never reach back before the last reset (`breaker_reset_at`).
    """
    now = now or timezone.now()
    s = settings_for(deployment)
    window = timedelta(minutes=s["window_minutes"])
    # Buckets are minutes: after a reset, start at the next whole minute, so nothing counted
    # before the reset is read again (at most the rest of that minute goes unwatched).
    floor = minute_of(deployment.breaker_reset_at) + timedelta(minutes=1) if deployment.breaker_reset_at else None
    start = max(now - window, floor) if floor else now - window
    audit_start = now - timedelta(minutes=s["audit_window_minutes"])
    audit_start = max(audit_start, floor) if floor else audit_start
    reading = BreakerReading(window_start=start)
    recent = _sums(deployment.pk, start)
    reading.failures = recent[Metric.EXECUTION_FAILED_AUTO]
    reading.executions = reading.failures + recent[Metric.EXECUTION_EXECUTED_AUTO]
    reading.volume = recent[Metric.PROPOSED_AUTO]
    audits = _sums(deployment.pk, audit_start)
    reading.audit_incorrect = audits[Metric.AUDIT_INCORRECT]
    reading.audited = reading.audit_incorrect + audits[Metric.AUDIT_CORRECT]
    baseline_hours = s["baseline_hours"]
    baseline = _sums(deployment.pk, now - window - timedelta(hours=baseline_hours), now - window)[Metric.PROPOSED_AUTO]
    min_events = s["min_events"]
    if baseline >= min_events:
        reading.baseline_per_window = baseline / (baseline_hours * 60 / s["window_minutes"])

    if reading.executions >= min_events and reading.failure_rate > s["max_failure_rate"]:
        reading.reasons.append(
            f"execution failure rate {reading.failure_rate:.1%} ({reading.failures}/{reading.executions}) "
            f"over {s['window_minutes']:g} min exceeds {s['max_failure_rate']:.1%}"
        )
    if reading.audited >= min_events and reading.audit_rejected_rate > s["max_audit_rejected_rate"]:
        reading.reasons.append(
            f"audit-rejected rate {reading.audit_rejected_rate:.1%} ({reading.audit_incorrect}/{reading.audited}) "
            f"exceeds {s['max_audit_rejected_rate']:.1%}"
        )
    if (
        reading.baseline_per_window is not None
        and reading.volume >= min_events
        and reading.volume > s["volume_factor"] * reading.baseline_per_window
    ):
        reading.reasons.append(
            f"auto-execution volume {reading.volume} over {s['window_minutes']:g} min exceeds "
            f"{s['volume_factor']:g}× the trailing baseline ({reading.baseline_per_window:.1f})"
        )
    return reading
