from datetime import timedelta

import factory
from django.utils import timezone

from deliveries.models import Delivery
from tests.factories import DeploymentFactory


class DeliveryFactory(factory.django.DjangoModelFactory):
    """A due, never-attempted delivery of a small action body."""

    class Meta:
        model = Delivery

    deployment = factory.SubFactory(DeploymentFactory)
    event_type = "action.approved"
    object_type = "reviews.proposedaction"
    object_id = factory.Sequence(str)
    url = "http://127.0.0.1:9/unused"
    body = factory.LazyAttribute(lambda o: f'{{"id":{o.object_id},"decision":"execute"}}')
    next_attempt_at = factory.LazyFunction(timezone.now)
    give_up_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))
