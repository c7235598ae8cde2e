"""Which new actions are samples for measuring the humans. Pure Python, no ORM."""

import random

from deployments.models import Deployment
from deployments.policy import Route, Stage

SAMPLED_ROUTES = (Route.REVIEW, Route.SENIOR)


def review_sample_for(*, deployment: Deployment, stage: Stage, route: Route, draw=random.random) -> str:
    """The `ProposedAction.review_sample` of a new action: "blind", "double" or "".

    Only actions a person decides are sampled; double review only in the reviewer queue (a
    disagreement goes to the senior queue). Blind samples exist at stage 2 only (the
    approval stage, whose approved-unchanged rate they check); an action is one kind of
    sample at most: drawn blind first, then double (so at stage 2 the double share is
    (1 - blind_review_rate) × double_review_rate)."""
    if route not in SAMPLED_ROUTES:
        return ""
    if stage is Stage.APPROVAL and deployment.blind_review_rate > 0 and draw() < deployment.blind_review_rate:
        return "blind"
    if route is Route.REVIEW and deployment.double_review_rate > 0 and draw() < deployment.double_review_rate:
        return "double"
    return ""
