"""Fixtures of the client tests: a live server and clients with keys of new deployments."""

import pytest
from trustladder_client import Client

from deployments.services import api_key_create
from tests.factories import DeploymentFactory


@pytest.fixture
def make_client(live_server):
    clients: list[Client] = []

    def make(stage: str) -> tuple[Client, object]:
        deployment = DeploymentFactory(stage=stage)
        _, raw = api_key_create(deployment=deployment)
        client = Client(live_server.url, raw, timeout=10)
        clients.append(client)
        return client, deployment

    yield make
    for client in clients:
        client.close()
