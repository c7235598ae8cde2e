"""Two workers handed the same delivery at the same instant: exactly one gets the attempt."""

import pytest

from deliveries.models import DeliveryAttempt
from deliveries.services import delivery_claim
from tests.deliveries.factories import DeliveryFactory
from tests.reviews.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_claims_give_exactly_one_attempt():
    for _ in range(20):
        delivery = DeliveryFactory()
        results = run_together(*[lambda d=delivery: delivery_claim(delivery_id=d.pk) for _ in range(4)])
        assert sum(isinstance(r, DeliveryAttempt) for r in results) == 1, results
        assert sum(r is None for r in results) == 3, results
        assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1
