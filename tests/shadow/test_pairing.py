"""reviews.shadow.pairing: on PostgreSQL, the SQL version of each concern gives what its ORM
reference gives (the pairs found, the comparisons written; the deployments' FOR SHARE lock is
deployments.locks', tested in tests/deployments/test_locks.py)."""

import json

import pytest
from django.db import transaction

from core.jsonlimits import NumbersAsDoubles
from reviews.models import ProposedAction
from reviews.shadow import pairing
from reviews.shadow.models import ShadowOutcome
from tests.factories import DeploymentFactory
from tests.shadow.test_services import shadow_action

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def logged(deployment):
    """Shadow actions of two deployments: some with an outcome, one without, one compared."""
    other = DeploymentFactory(comparison_rules={"ignore": ["note"]})
    actions = [shadow_action(deployment, f"E-{i}", {"n": i}) for i in range(5)]
    actions.append(shadow_action(other, "E-0", {"n": 0, "note": "x"}))
    actions.append(shadow_action(deployment, "E-none", {}))  # no outcome
    compared = shadow_action(deployment, "E-1", {"n": 1})
    ProposedAction.objects.filter(pk=compared.pk).update(status="compared")
    for dep, ext in [(deployment, f"E-{i}") for i in range(5)] + [(other, "E-0")]:
        ShadowOutcome.objects.create(deployment=dep, external_id=ext, action_type="refund.issue", payload={"n": 9})
    return actions + [compared]


def test_pairs_by_ids_match_the_orm(logged):
    ids = [a.pk for a in logged]
    with transaction.atomic():
        rules, pairs = pairing.pairs_lock(action_ids=ids)
    reference = pairing.pairs_orm(pairing._logged().filter(pk__in=ids))
    assert pairs == reference and len(pairs) == 6
    assert rules == {a.deployment_id: a.deployment.comparison_rules or {} for a in logged}


def test_pairs_after_an_id_match_the_orm(logged, deployment):
    after = logged[1].pk
    with transaction.atomic():
        pairs = pairing.pairs_lock_after(deployment_id=deployment.pk, after=after, limit=2)
    paired = ShadowOutcome.objects.filter(deployment=deployment).values("external_id")
    reference = pairing.pairs_orm(
        pairing._logged().filter(deployment=deployment, external_id__in=paired, pk__gt=after), limit=2
    )
    assert pairs == reference and [p.id for p in pairs] == [logged[2].pk, logged[3].pk]


@pytest.mark.parametrize("status", [None, "compared"])
def test_comparisons_written_match_the_orm(logged, status):
    sql_rows, orm_rows = logged[:2], logged[2:4]
    comparison = {"agree": False, "diff": [{"path": "n", "kind": "changed", "ai": 1, "human": "é\u2028"}]}
    pairing.comparisons_write([(a.pk, comparison) for a in sql_rows], status=status)
    pairing.comparisons_write_orm([(a.pk, comparison) for a in orm_rows], status=status)
    got = {a.pk: a for a in ProposedAction.objects.filter(pk__in=[a.pk for a in logged[:4]])}
    for sql, orm in zip(sql_rows, orm_rows, strict=True):
        assert (got[sql.pk].comparison, got[sql.pk].status) == (got[orm.pk].comparison, got[orm.pk].status)
        assert got[sql.pk].comparison == comparison
        assert got[sql.pk].status == (status or "logged")


def test_payloads_read_as_the_models_read_them(deployment):
    """orjson reads the pairs' payloads, the models' decoder (NumbersAsDoubles) what orjson
    would read otherwise (integers past the safe range, numbers past a double): the pairs are
    the ORM's either way."""
    payload = {"n": 123456789012345678901234567890, "f": 1.5, "s": "é\u2028", "l": [1, 2.0, None, True]}
    payload |= {"safe": 9007199254740993, "nested": {"x": -0.0}}
    action = shadow_action(deployment, "E-big", {"n": 1})
    # Stored behind the API's back: the API refuses integers no double holds, jsonb does not.
    ProposedAction.objects.filter(pk=action.pk).update(payload=payload)
    ShadowOutcome.objects.create(deployment=deployment, external_id="E-big", action_type="refund.issue", payload={})
    with transaction.atomic():
        _, pairs = pairing.pairs_lock(action_ids=[action.pk])
    reference = pairing.pairs_orm(pairing._logged().filter(pk=action.pk))
    assert pairs == reference and repr(pairs[0].payload) == repr(reference[0].payload)
    texts = ['{"a": 18446744073709551616}', '{"a": -9223372036854775809}', '{"a": 9007199254740993}', "[1e400]"]
    for text in [*texts, '{"a": [1, 2.5, "x", 9007199254740991]}']:
        expected = json.loads(text, cls=NumbersAsDoubles)
        assert repr(pairing._json(text)) == repr(expected), text
