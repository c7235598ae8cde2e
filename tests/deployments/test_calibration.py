"""Calibration (issue 16 item 4): bands, ECE, Brier and the candidate threshold."""

import pytest

from deployments.calibration import calibration
from deployments.models import Member
from deployments.services import api_key_create
from deployments.simulator import replay_count_add
from deployments.stats import wilson_interval
from tests.conftest import ApiClient
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db


def _decided(deployment, confidence, **outcomes):
    for outcome, n in outcomes.items():
        for _ in range(n):
            replay_count_add(
                deployment_id=deployment.pk,
                action_type="t",
                risk=0.5,
                confidence=confidence,
                needs_human=False,
                outcome=outcome,
            )


@pytest.fixture
def dep(db):
    # The 2→3 gate's changed-or-rejected bound, loosened so that a few hundred decisions can meet it.
    return DeploymentFactory(stage="approval", gate_criteria={"supervised": {"max_counterfactual_changed_upper": 0.2}})


def test_bands_rates_ece_brier_and_the_candidate(dep):
    _decided(dep, 0.975, approve=196, edit=4)  # band 0.95–1.0: 98 % unchanged
    _decided(dep, 0.925, approve=90, reject=10)  # band 0.90–0.95: 90 %
    _decided(dep, 0.625, approve=10, reject=10)  # band 0.60–0.65: 50 %
    cal = calibration(deployment=dep)
    assert [r["band"] for r in cal["bands"]] == [[0.6, 0.65], [0.9, 0.95], [0.95, 1.0]]
    top = cal["bands"][-1]
    assert top["n"] == 200 and top["unchanged_rate"] == 0.98
    assert top["lower"] == pytest.approx(wilson_interval(196, 200)[0], abs=1e-4)
    assert cal["n"] == 320
    expected_ece = (200 * abs(0.98 - 0.975) + 100 * abs(0.9 - 0.925) + 20 * abs(0.5 - 0.625)) / 320
    assert cal["ece"] == pytest.approx(expected_ece, abs=1e-4)
    brier = (196 * 0.025**2 + 4 * 0.975**2 + 90 * 0.075**2 + 10 * 0.925**2 + 10 * 0.375**2 + 10 * 0.625**2) / 320
    assert cal["brier"] == pytest.approx(brier, abs=1e-4)
    # 0.95–1.0 and 0.90–0.95 keep changed-or-rejected's upper bound ≤ 0.2; 0.60–0.65 does not.
    assert cal["candidate_auto_min_confidence"] == 0.9


def test_no_decisions_no_candidate(dep):
    cal = calibration(deployment=dep)
    assert cal["bands"] == [] and cal["ece"] is None and cal["candidate_auto_min_confidence"] is None


def test_the_page_draws_the_chart_and_replays_the_candidate(dep, client):
    _decided(dep, 0.975, approve=50)
    client.force_login(MemberFactory(role=Member.Role.REVIEWER, deployments=[dep]).user)
    page = client.get(f"/deployments/{dep.slug}/calibration/").content.decode()
    assert "<svg" in page and 'id="calibration-table"' in page and 'data-testid="simulation"' in page
    stranger = MemberFactory(role=Member.Role.REVIEWER)
    client.force_login(stranger.user)
    assert client.get(f"/deployments/{dep.slug}/calibration/").status_code == 404


def test_the_evidence_api_carries_calibration(dep):
    _decided(dep, 0.975, approve=5)
    body = ApiClient(api_key_create(deployment=dep)[1]).get("/api/v1/deployment/evidence").json()
    assert body["calibration"]["n"] == 5 and body["calibration"]["bands"][0]["band"] == [0.95, 1.0]
