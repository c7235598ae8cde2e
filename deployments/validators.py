"""Checks of a deployment's JSON settings, and the defaults they are checked against.

Pure Python, so that `Deployment.clean()` imports them at the top of models.py: the gate
(`deployments.gate`) and the breakers (`deployments.breakers`) read the same defaults from
here, and neither is imported by the models.
"""

from typing import Any

from deployments.policy import Stage

# The promotion gate's criteria, keyed by the stage being promoted *to*. A deployment
# overrides any of them in `Deployment.gate_criteria` ({"supervised": {"min_decisions": 300}}).
DEFAULT_CRITERIA: dict[str, dict[str, float]] = {
    Stage.APPROVAL: {
        "min_pairs": 200,
        "min_agreement_lower": 0.90,
        "per_type_min_pairs": 30,
        "per_type_min_lower": 0.85,
        "min_days": 14,
    },
    Stage.SUPERVISED: {
        "min_decisions": 500,
        "min_unchanged_lower": 0.90,
        "min_counterfactual": 100,
        "max_counterfactual_changed_upper": 0.02,
        "min_days": 14,
    },
    Stage.AUTONOMOUS: {
        "min_auto_executions": 1000,
        "max_failure_upper": 0.01,
        "min_audit_samples": 50,
        "max_audit_rejected_upper": 0.02,
        "breaker_quiet_days": 14,
        "min_sla_rate": 0.95,
    },
}

RATE_KEYS = {
    "min_agreement_lower",
    "per_type_min_lower",
    "min_unchanged_lower",
    "max_counterfactual_changed_upper",
    "max_failure_upper",
    "max_audit_rejected_upper",
    "min_sla_rate",
}

# The circuit breakers' settings; a deployment overrides any of them in
# `Deployment.breaker_settings` ({"max_failure_rate": 0.1}).
DEFAULT_BREAKER_SETTINGS: dict[str, float] = {
    "window_minutes": 60,
    "min_events": 20,
    "max_failure_rate": 0.05,  # execution.failed.auto / all auto executions in the window
    "audit_window_minutes": 24 * 60,  # audit verdicts are rarer: a longer window
    "max_audit_rejected_rate": 0.10,  # audit.incorrect / all verdicts in the audit window
    "volume_factor": 5,  # auto-approvals in the window > k × the trailing baseline per window
    "baseline_hours": 24,
}


def gate_criteria_errors(overrides: Any) -> list[str]:
    """Problems with a `gate_criteria` override (empty list when it is valid)."""
    if not isinstance(overrides, dict):
        return ["must be an object keyed by target stage"]
    errors = []
    for stage, values in overrides.items():
        if stage not in DEFAULT_CRITERIA:
            errors.append(f"{stage!r} is not a promotion target (one of {', '.join(DEFAULT_CRITERIA)})")
            continue
        if not isinstance(values, dict):
            errors.append(f"{stage}: must be an object")
            continue
        for key, value in values.items():
            if key not in DEFAULT_CRITERIA[stage]:
                errors.append(f"{stage}: unknown criterion {key!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                errors.append(f"{stage}.{key}: must be a non-negative number")
            elif key in RATE_KEYS and value > 1:
                errors.append(f"{stage}.{key}: must be between 0 and 1")
    return errors


def breaker_settings_errors(overrides: Any) -> list[str]:
    """Problems with a `breaker_settings` override (empty list when it is valid)."""
    if not isinstance(overrides, dict):
        return ["must be an object"]
    errors = []
    for key, value in overrides.items():
        if key not in DEFAULT_BREAKER_SETTINGS:
            errors.append(f"unknown setting {key!r} (one of {', '.join(DEFAULT_BREAKER_SETTINGS)})")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(f"{key}: must be a positive number")
        elif key.startswith("max_") and value > 1:
            errors.append(f"{key}: must be between 0 and 1")
    return errors
