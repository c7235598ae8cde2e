"""Checks of a deployment's JSON settings, and the defaults they are checked against.

Pure Python, so that `Deployment.clean()` imports them at the top of models.py: the gate
(`deployments.gate`) and the breakers (`deployments.breakers`) read the same defaults from
here, and neither is imported by the models.
"""

from collections.abc import Callable, Container
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
        # Measuring the humans (deployments/gate_humans.py), each off at 0:
        # blind answers agreeing with the AI: 95% lower bound >= this, over min_blind_samples;
        "min_blind_agreement": 0,
        "min_blind_samples": 50,
        # AI–human agreement >= human–human agreement - human_baseline_margin, over at least
        # min_double_reviews double-reviewed actions.
        "min_double_reviews": 0,
        "human_baseline_margin": 0.05,
        # 1: leave the decisions of reviewers the quality page flags out of the decision criteria.
        "exclude_flagged_reviewers": 0,
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
    "min_blind_agreement",
    "human_baseline_margin",
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
        elif not isinstance(values, dict):
            errors.append(f"{stage}: must be an object")
        else:
            errors += _numbers_errors(
                values,
                DEFAULT_CRITERIA[stage],
                unknown=lambda key, stage=stage: f"{stage}: unknown criterion {key!r}",
                prefix=f"{stage}.",
                is_rate=RATE_KEYS.__contains__,
            )
    return errors


def breaker_settings_errors(overrides: Any) -> list[str]:
    """Problems with a `breaker_settings` override (empty list when it is valid)."""
    return _settings_errors(overrides, DEFAULT_BREAKER_SETTINGS, positive=True, is_rate=lambda k: k.startswith("max_"))


def _settings_errors(overrides: Any, defaults: dict[str, float], **checks: Any) -> list[str]:
    """Problems with a flat override of `defaults` (`_numbers_errors`' `checks`)."""
    if not isinstance(overrides, dict):
        return ["must be an object"]
    known = ", ".join(defaults)
    return _numbers_errors(
        overrides, defaults, unknown=lambda key: f"unknown setting {key!r} (one of {known})", **checks
    )


def _numbers_errors(
    values: dict,
    allowed: Container[str],
    *,
    unknown: Callable[[str], str],
    is_rate: Callable[[str], bool],
    prefix: str = "",
    positive: bool = False,
    also: Callable[[str, float], str] = lambda key, value: "",
) -> list[str]:
    """Problems with a flat object of numeric settings: unknown keys (`unknown` words them),
    values that are not numbers at least 0 (above 0 if `positive`), what `also` finds wrong
    with a number (its problem, or ""), rates above 1."""
    errors = []
    for key, value in values.items():
        if key not in allowed:
            errors.append(unknown(key))
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (positive and value == 0):
            errors.append(f"{prefix}{key}: must be a {'positive' if positive else 'non-negative'} number")
        elif problem := also(key, value):
            errors.append(problem)
        elif is_rate(key) and value > 1:
            errors.append(f"{prefix}{key}: must be between 0 and 1")
    return errors


def input_fields_errors(value: Any) -> list[str]:
    """Problems with `Deployment.blind_input_fields`: a list of dotted payload paths."""
    if not isinstance(value, list):
        return ["must be a list of payload field paths"]
    if len(value) > 50:
        return ["at most 50 fields"]
    errors = []
    for path in value:
        if not isinstance(path, str) or not path.strip() or len(path) > 200 or "\x00" in path:
            errors.append(f"{path!r} is not a field path (dotted, 1 to 200 characters)")
    return errors


# When the reviewer-quality page (deployments/reviewers.py) flags a reviewer; a deployment
# overrides any of them in `Deployment.reviewer_flags`. Every flag needs `min_decisions` in the
# window first; docs/reviewers.md explains each.
DEFAULT_REVIEWER_FLAGS: dict[str, float] = {
    "min_decisions": 50,
    "fast_seconds": 10,  # "decided in under N seconds": one of TIME_BUCKETS
    "max_fast_share": 0.5,  # flag: more than this share decided in under fast_seconds
    "max_approve_streak": 200,  # flag: a run of this many approvals without an edit or reject
    "min_change_rate": 0.01,  # flag: edits + rejects below this share of decisions
    "min_pairs": 20,  # agreement flags need this many double-review pairs / blind answers
    "min_partner_agreement": 0.6,  # flag: agreeing with double-review partners below this
    "min_blind_agreement": 0.5,  # flag: blind answers agreeing with the AI below this (inattentive)
}
# Upper edges (seconds) of the time-to-decision buckets counted per reviewer (Metric ttd.*).
TIME_BUCKETS = (5, 10, 30, 60, 300)


def reviewer_flags_errors(overrides: Any) -> list[str]:
    """Problems with a `reviewer_flags` override (empty list when it is valid)."""
    return _settings_errors(overrides, DEFAULT_REVIEWER_FLAGS, is_rate=_is_flag_rate, also=_fast_seconds_problem)


def _fast_seconds_problem(key: str, value: float) -> str:
    if key == "fast_seconds" and value not in TIME_BUCKETS:
        return f"fast_seconds: must be one of {', '.join(map(str, TIME_BUCKETS))}"
    return ""


def _is_flag_rate(key: str) -> bool:
    return (
        key.startswith("max_")
        and key.endswith("share")
        or key.startswith("min_")
        and "rate" in key
        or key.endswith("agreement")
    )
