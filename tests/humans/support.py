"""Helpers of the humans' tests: samples built directly, counters read back."""

from deployments.counters import Metric
from deployments.models import EvidenceCount
from reviews.models import ProposedAction
from tests.factories import ProposedActionFactory


def evidence(deployment, metric: Metric) -> int:
    return sum(EvidenceCount.objects.filter(deployment=deployment, metric=metric).values_list("n", flat=True))


def sample(deployment, kind: str, **kw) -> ProposedAction:
    kw.setdefault("payload", {"order": "A-1", "amount_cents": 1200, "note": "refund"})
    kw.setdefault("stage", "approval")
    return ProposedActionFactory(deployment=deployment, review_sample=kind, **kw)
