"""The routing rule of SPEC §1, as pure Python: no ORM, no settings, trivially testable.

`route_for()` maps the facts about one proposed action to one of four routes. Oversight is
ordered AUTO < REVIEW < SENIOR; SHADOW stands apart (never executed, nobody decides).
"""

from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    SHADOW = "shadow"
    APPROVAL = "approval"
    SUPERVISED = "supervised"
    AUTONOMOUS = "autonomous"

    @property
    def rank(self) -> int:
        return STAGE_ORDER.index(self)

    @property
    def next(self) -> "Stage | None":
        return STAGE_ORDER[self.rank + 1] if self.rank + 1 < len(STAGE_ORDER) else None


STAGE_ORDER: tuple[Stage, ...] = (Stage.SHADOW, Stage.APPROVAL, Stage.SUPERVISED, Stage.AUTONOMOUS)


class Route(StrEnum):
    SHADOW = "shadow"
    AUTO = "auto"
    REVIEW = "review"
    SENIOR = "senior"


# How much human oversight a route carries; SHADOW is outside this order.
OVERSIGHT = {Route.AUTO: 0, Route.REVIEW: 1, Route.SENIOR: 2}

DEFAULT_AUTO_MAX_RISK = 0.3
DEFAULT_AUTO_MIN_CONFIDENCE = 0.95
DEFAULT_REVIEW_MAX_RISK = 0.7


@dataclass(frozen=True, slots=True)
class Thresholds:
    auto_max_risk: float = DEFAULT_AUTO_MAX_RISK
    auto_min_confidence: float = DEFAULT_AUTO_MIN_CONFIDENCE
    review_max_risk: float = DEFAULT_REVIEW_MAX_RISK


def effective_stage(stage: Stage | str, cap: Stage | str | None) -> Stage:
    """The lower of the deployment's stage and the action type's cap (if any)."""
    stage = Stage(stage)
    if cap is None:
        return stage
    cap = Stage(cap)
    return cap if cap.rank < stage.rank else stage


def route_for(
    *,
    stage: Stage | str,
    thresholds: Thresholds,
    risk: float,
    confidence: float,
    needs_human: bool = False,
    fail_closed: bool = False,
) -> Route:
    """Route one action, exactly as SPEC §1 says.

    `stage` is the *effective* stage. `fail_closed` is true when the deployment is paused or
    its circuit breaker has tripped: nothing is auto-executed, and what would have gone to the
    senior queue still does (failing closed never lowers oversight). A shadow deployment stays
    shadow when paused: its actions are never executed anyway.

    `needs_human` is the agent saying "this is an exception": SPEC sends it to the senior queue
    in stage 4; stages 2 and 3 do the same, so that a higher stage never means more oversight
    for the same action (a property the tests check).
    """
    stage = Stage(stage)
    if stage is Stage.SHADOW:
        return Route.SHADOW
    if risk >= thresholds.review_max_risk or needs_human:
        return Route.SENIOR
    if stage is Stage.APPROVAL:
        return Route.REVIEW
    if fail_closed:
        return Route.REVIEW
    if stage is Stage.AUTONOMOUS:
        return Route.AUTO
    # SUPERVISED: strict inequalities, as written in SPEC §1.
    if risk < thresholds.auto_max_risk and confidence > thresholds.auto_min_confidence:
        return Route.AUTO
    return Route.REVIEW
