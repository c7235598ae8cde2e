"""The routing rule of SPEC §1: every boundary in every stage, and oversight is monotone."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployments.policy import OVERSIGHT, STAGE_ORDER, Route, Stage, Thresholds, effective_stage, route_for

T = Thresholds()  # defaults: auto < 0.3, confidence > 0.95, review < 0.7

# (stage, risk, confidence, needs_human, fail_closed) -> route
CASES = [
    # shadow: always shadow, whatever the numbers or the kill switch
    ("shadow", 0.0, 1.0, False, False, "shadow"),
    ("shadow", 0.3, 0.95, False, False, "shadow"),
    ("shadow", 0.7, 0.95, False, False, "shadow"),
    ("shadow", 1.0, 0.0, True, True, "shadow"),
    # approval: every action waits; senior at risk >= 0.7
    ("approval", 0.0, 1.0, False, False, "review"),
    ("approval", 0.29999, 0.99, False, False, "review"),
    ("approval", 0.3, 0.95, False, False, "review"),
    ("approval", 0.69999, 0.5, False, False, "review"),
    ("approval", 0.7, 0.99, False, False, "senior"),
    ("approval", 1.0, 1.0, False, False, "senior"),
    ("approval", 0.1, 0.99, False, True, "review"),
    ("approval", 0.1, 0.99, True, False, "senior"),  # the agent flags an exception
    # supervised: auto iff risk < 0.3 and confidence > 0.95 (strict)
    ("supervised", 0.0, 1.0, False, False, "auto"),
    ("supervised", 0.29999, 0.95001, False, False, "auto"),
    ("supervised", 0.3, 0.99, False, False, "review"),  # risk exactly 0.3 is not auto
    ("supervised", 0.1, 0.95, False, False, "review"),  # confidence exactly 0.95 is not auto
    ("supervised", 0.3, 0.95, False, False, "review"),
    ("supervised", 0.69999, 0.99, False, False, "review"),
    ("supervised", 0.7, 0.99, False, False, "senior"),  # risk exactly 0.7 is senior
    ("supervised", 1.0, 1.0, False, False, "senior"),
    ("supervised", 0.1, 0.99, True, False, "senior"),  # the agent flags an exception
    ("supervised", 0.1, 0.99, False, True, "review"),  # paused / tripped: never auto
    ("supervised", 0.7, 0.99, False, True, "senior"),  # failing closed never lowers oversight
    # autonomous: auto except true exceptions
    ("autonomous", 0.0, 0.0, False, False, "auto"),
    ("autonomous", 0.3, 0.95, False, False, "auto"),
    ("autonomous", 0.69999, 0.1, False, False, "auto"),
    ("autonomous", 0.7, 1.0, False, False, "senior"),
    ("autonomous", 0.1, 1.0, True, False, "senior"),
    ("autonomous", 0.1, 1.0, False, True, "review"),
    ("autonomous", 0.9, 1.0, False, True, "senior"),
]


@pytest.mark.parametrize(("stage", "risk", "confidence", "needs_human", "fail_closed", "expected"), CASES)
def test_route_table(stage, risk, confidence, needs_human, fail_closed, expected):
    got = route_for(
        stage=stage,
        thresholds=T,
        risk=risk,
        confidence=confidence,
        needs_human=needs_human,
        fail_closed=fail_closed,
    )
    assert got == Route(expected)


def test_custom_thresholds_are_used():
    t = Thresholds(auto_max_risk=0.5, auto_min_confidence=0.8, review_max_risk=0.9)
    assert route_for(stage="supervised", thresholds=t, risk=0.45, confidence=0.85) is Route.AUTO
    assert route_for(stage="supervised", thresholds=t, risk=0.5, confidence=0.85) is Route.REVIEW
    assert route_for(stage="supervised", thresholds=t, risk=0.8, confidence=0.85) is Route.REVIEW
    assert route_for(stage="supervised", thresholds=t, risk=0.9, confidence=0.85) is Route.SENIOR


@pytest.mark.parametrize(
    ("stage", "cap", "expected"),
    [
        ("supervised", None, "supervised"),
        ("supervised", "approval", "approval"),
        ("supervised", "autonomous", "supervised"),  # a cap never raises the stage
        ("autonomous", "shadow", "shadow"),
        ("shadow", "autonomous", "shadow"),
    ],
)
def test_effective_stage_is_the_lower(stage, cap, expected):
    assert effective_stage(stage, cap) is Stage(expected)


def test_stage_order_and_next():
    assert [s.value for s in STAGE_ORDER] == ["shadow", "approval", "supervised", "autonomous"]
    assert Stage.SHADOW.next is Stage.APPROVAL
    assert Stage.AUTONOMOUS.next is None


unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
human_stages = st.sampled_from([Stage.APPROVAL, Stage.SUPERVISED, Stage.AUTONOMOUS])


@given(
    stage=human_stages,
    r1=unit,
    r2=unit,
    c1=unit,
    c2=unit,
    needs_human=st.booleans(),
    fail_closed=st.booleans(),
)
def test_more_risk_or_less_confidence_never_lowers_oversight(stage, r1, r2, c1, c2, needs_human, fail_closed):
    low_risk, high_risk = sorted((r1, r2))
    low_conf, high_conf = sorted((c1, c2))
    kw = {"stage": stage, "thresholds": T, "needs_human": needs_human, "fail_closed": fail_closed}
    safer = route_for(risk=low_risk, confidence=high_conf, **kw)
    riskier = route_for(risk=high_risk, confidence=low_conf, **kw)
    assert OVERSIGHT[riskier] >= OVERSIGHT[safer]


@given(stage=human_stages, risk=unit, confidence=unit, needs_human=st.booleans())
def test_failing_closed_or_flagging_never_lowers_oversight(stage, risk, confidence, needs_human):
    base = route_for(stage=stage, thresholds=T, risk=risk, confidence=confidence)
    closed = route_for(stage=stage, thresholds=T, risk=risk, confidence=confidence, fail_closed=True)
    flagged = route_for(stage=stage, thresholds=T, risk=risk, confidence=confidence, needs_human=True)
    assert closed is not Route.AUTO and OVERSIGHT[closed] >= OVERSIGHT[base]
    assert flagged is not Route.AUTO and OVERSIGHT[flagged] >= OVERSIGHT[base]


@given(risk=unit, confidence=unit, needs_human=st.booleans(), fail_closed=st.booleans())
def test_higher_stage_never_adds_oversight(risk, confidence, needs_human, fail_closed):
    kw = {
        "thresholds": T,
        "risk": risk,
        "confidence": confidence,
        "needs_human": needs_human,
        "fail_closed": fail_closed,
    }
    routes = [route_for(stage=s, **kw) for s in (Stage.APPROVAL, Stage.SUPERVISED, Stage.AUTONOMOUS)]
    assert OVERSIGHT[routes[0]] >= OVERSIGHT[routes[1]] >= OVERSIGHT[routes[2]]
