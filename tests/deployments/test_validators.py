"""The numeric settings overrides share one check (deployments.validators._numbers_errors):
each keeps its own words, its own lower bound and its own rates."""

import pytest

from deployments.validators import breaker_settings_errors, gate_criteria_errors, reviewer_flags_errors


@pytest.mark.parametrize(
    ("check", "overrides", "errors"),
    [
        (gate_criteria_errors, [], ["must be an object keyed by target stage"]),
        (
            gate_criteria_errors,
            {"stage9": {}},
            ["'stage9' is not a promotion target (one of approval, supervised, autonomous)"],
        ),
        (gate_criteria_errors, {"supervised": 3}, ["supervised: must be an object"]),
        (gate_criteria_errors, {"supervised": {"nope": 1}}, ["supervised: unknown criterion 'nope'"]),
        (
            gate_criteria_errors,
            {"supervised": {"min_decisions": -1}},
            ["supervised.min_decisions: must be a non-negative number"],
        ),
        (gate_criteria_errors, {"supervised": {"min_decisions": 0}}, []),
        (
            gate_criteria_errors,
            {"supervised": {"min_decisions": True}},
            ["supervised.min_decisions: must be a non-negative number"],
        ),
        (breaker_settings_errors, "x", ["must be an object"]),
        (breaker_settings_errors, {"window_minutes": 0}, ["window_minutes: must be a positive number"]),
        (breaker_settings_errors, {"window_minutes": "5"}, ["window_minutes: must be a positive number"]),
        (breaker_settings_errors, {"max_failure_rate": 1.5}, ["max_failure_rate: must be between 0 and 1"]),
        (breaker_settings_errors, {"volume_factor": 7}, []),
        (reviewer_flags_errors, {"fast_seconds": 7}, ["fast_seconds: must be one of 5, 10, 30, 60, 300"]),
        (reviewer_flags_errors, {"fast_seconds": -5}, ["fast_seconds: must be a non-negative number"]),
        (reviewer_flags_errors, {"max_fast_share": 2}, ["max_fast_share: must be between 0 and 1"]),
        (reviewer_flags_errors, {"max_approve_streak": 500, "min_decisions": 0}, []),
    ],
)
def test_messages(check, overrides, errors):
    assert check(overrides) == errors


def test_unknown_setting_names_the_known_ones():
    (error,) = breaker_settings_errors({"speed": 1})
    assert error.startswith("unknown setting 'speed' (one of window_minutes, min_events,")
