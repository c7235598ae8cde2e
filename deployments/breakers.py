"""Circuit breakers of SPEC §3: reading the sliding window. The trip itself is a service
(`deployments.services.breaker_check` / `breaker_trip`).

The window is read from `BreakerCount`, minute buckets written by `evidence_add` beside the
daily counters for the few metrics the breakers watch. Why not the actions table: the
`deployments` app does not read `reviews` tables, and a sum over at most 60 minute rows per
metric (times a few shards) costs the same at 10 or 10 million actions. Why not the daily
EvidenceCount: a day is far coarser than a one-hour window.

Hysteresis: the trip thresholds are far looser than the promotion criteria (a 5% failure rate
trips, where promotion needed a 95% upper bound of 1%), so a deployment that earned its
stage does not flap, and one that trips is clearly unwell.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from deployments.models import BreakerCount, Deployment

DEFAULT_SETTINGS: dict[str, float] = {
    "window_minutes": 60,
    "min_events": 20,
    "max_failure_rate": 0.05,  # execution.failed.auto / all auto executions in the window
    "audit_window_minutes": 24 * 60,  # audit verdicts are rarer: a longer window
    "max_audit_rejected_rate": 0.10,  # audit.incorrect / all verdicts in the audit window
    "volume_factor": 5,  # auto-approvals in the window > k × the trailing baseline per window
    "baseline_hours": 24,
}

# Metrics copied into minute buckets (see deployments.services.evidence_add).
WATCHED_METRICS = frozenset(
    {"proposed.auto", "execution.executed.auto", "execution.failed.auto", "audit.correct", "audit.incorrect"}
)


def breaker_settings_errors(overrides: Any) -> list[str]:
    if not isinstance(overrides, dict):
        return ["must be an object"]
    errors = []
    for key, value in overrides.items():
        if key not in DEFAULT_SETTINGS:
            errors.append(f"unknown setting {key!r} (one of {', '.join(DEFAULT_SETTINGS)})")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(f"{key}: must be a positive number")
        elif key.startswith("max_") and value > 1:
            errors.append(f"{key}: must be between 0 and 1")
    return errors


def settings_for(deployment: Deployment) -> dict[str, float]:
    values = dict(DEFAULT_SETTINGS)
    values.update(deployment.breaker_settings or {})
    return values


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


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


def _sums(deployment_id: int, start: datetime, end: datetime | None = None) -> dict[str, int]:
    qs = BreakerCount.objects.filter(deployment_id=deployment_id, minute__gte=minute_of(start))
    if end is not None:
        qs = qs.filter(minute__lt=minute_of(end))
    return {row["metric"]: row["n_sum"] for row in qs.values("metric").annotate(n_sum=Sum("n"))}


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
    reading.failures = recent.get("execution.failed.auto", 0)
    reading.executions = reading.failures + recent.get("execution.executed.auto", 0)
    reading.volume = recent.get("proposed.auto", 0)
    audits = _sums(deployment.pk, audit_start)
    reading.audit_incorrect = audits.get("audit.incorrect", 0)
    reading.audited = reading.audit_incorrect + audits.get("audit.correct", 0)
    baseline_hours = s["baseline_hours"]
    baseline = _sums(deployment.pk, now - window - timedelta(hours=baseline_hours), now - window).get(
        "proposed.auto", 0
    )
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
