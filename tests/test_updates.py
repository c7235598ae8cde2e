"""core.updates.model_update: sets the fields and saves only those, in one UPDATE."""

import pytest

from core.updates import model_update
from deployments.models import Deployment


@pytest.mark.django_db
def test_saves_only_the_named_fields(deployment, django_assert_num_queries):
    stale = Deployment.objects.get(pk=deployment.pk)
    Deployment.objects.filter(pk=deployment.pk).update(name="renamed elsewhere")
    with django_assert_num_queries(1):
        assert model_update(stale, paused=True, breaker_reason="why") is stale
    fresh = Deployment.objects.get(pk=deployment.pk)
    assert (fresh.paused, fresh.breaker_reason) == (True, "why")
    assert fresh.name == "renamed elsewhere"  # the stale copy's other fields were not written back


@pytest.mark.django_db
def test_an_unknown_field_is_refused_before_anything_is_written(deployment):
    with pytest.raises(ValueError):
        model_update(deployment, no_such_field=1)
