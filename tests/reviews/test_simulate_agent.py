"""The simulated agent drives the real HTTP API with the Python client."""

import pytest
from django.core.management import call_command

from deployments.services import api_key_create
from reviews.models import ProposedAction
from tests.factories import DeploymentFactory


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stage", ["shadow", "supervised", "autonomous"])
def test_simulate_agent_proposes_executes_and_reports(live_server, stage, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    deployment = DeploymentFactory(slug=f"sim-{stage}", stage=stage)
    _, key = api_key_create(deployment=deployment)
    _, recorder = api_key_create(deployment=deployment, scopes=["outcomes"])
    call_command(
        "simulate_agent",
        deployment.slug,
        "--key",
        key,
        "--outcomes-key",
        recorder,
        "--base-url",
        live_server.url,
        "--count",
        "12",
        "--rate",
        "200",
        "--seed",
        "3",
    )
    actions = ProposedAction.objects.filter(deployment=deployment)
    assert actions.count() == 12
    assert set(actions.values_list("model_version", flat=True)) == {"sim-1"}
    if stage == "autonomous":
        assert actions.filter(status__in=["executed", "failed"]).count() == 12
    if stage == "shadow":
        # Every shadow proposal got its human outcome (comparison then runs in a worker).
        from reviews.shadow.models import ShadowOutcome

        outcomes = set(ShadowOutcome.objects.filter(deployment=deployment).values_list("external_id", flat=True))
        assert outcomes == set(actions.values_list("external_id", flat=True))
