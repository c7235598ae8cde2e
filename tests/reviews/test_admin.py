"""The Django admin changelist of ProposedAction: its cost must not grow with the table."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from reviews.admin import EstimatedCountPaginator
from reviews.models import ProposedAction
from tests.factories import DeploymentFactory, ProposedActionFactory

URL = "/admin/reviews/proposedaction/"


@pytest.fixture
def ac(admin) -> Client:
    admin.user.is_staff = admin.user.is_superuser = True
    admin.user.save()
    client = Client()
    client.force_login(admin.user)
    return client


def _counts_whole_table(sql: str) -> bool:
    sql = sql.upper()
    return "COUNT(" in sql and "REVIEWS_PROPOSEDACTION" in sql and " WHERE " not in sql


def test_changelist_renders_newest_first_without_counting_the_whole_table(ac, monkeypatch):
    actions = [ProposedActionFactory(deployment=DeploymentFactory()) for _ in range(5)]
    on_postgres = connection.vendor == "postgresql"
    if on_postgres:
        # Take the estimate however small the table, with statistics that know its rows.
        monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 0)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE reviews_proposedaction")
    with CaptureQueriesContext(connection) as ctx:
        response = ac.get(URL)
    assert response.status_code == 200
    assert [a.pk for a in response.context["cl"].result_list] == [a.pk for a in reversed(actions)]
    assert response.context["cl"].full_result_count is None
    if on_postgres:
        whole = [q["sql"] for q in ctx.captured_queries if _counts_whole_table(q["sql"])]
        assert whole == [], whole
        assert any("reltuples" in q["sql"] for q in ctx.captured_queries)


def test_changelist_query_count_does_not_grow_with_rows(ac):
    ProposedActionFactory()
    ac.get(URL)  # warm the session
    with CaptureQueriesContext(connection) as one:
        ac.get(URL)
    for _ in range(6):
        ProposedActionFactory(deployment=DeploymentFactory())
    with CaptureQueriesContext(connection) as seven:
        ac.get(URL)
    assert len(seven.captured_queries) == len(one.captured_queries)


def test_small_or_filtered_changelists_are_counted_exactly(ac):
    ProposedActionFactory.create_batch(3)
    ProposedActionFactory(status=ProposedAction.Status.REJECTED)
    # Below exact_below rows, and with a filter, the count is exact (COUNT(*)), on any database.
    assert ac.get(URL).context["cl"].result_count == 4
    filtered = ac.get(URL, {"status__exact": ProposedAction.Status.REJECTED})
    assert filtered.context["cl"].result_count == 1
    assert len(filtered.context["cl"].result_list) == 1


@pytest.mark.postgres
def test_paginator_estimates_only_an_unfiltered_queryset(db, monkeypatch):
    ProposedActionFactory.create_batch(3)
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_proposedaction")
    with CaptureQueriesContext(connection) as ctx:
        assert EstimatedCountPaginator(ProposedAction.objects.all(), 100).count == 3
        assert EstimatedCountPaginator(ProposedAction.objects.filter(risk_score__gt=1), 100).count == 0
    assert "reltuples" in ctx.captured_queries[0]["sql"]
    assert "COUNT(" in ctx.captured_queries[-1]["sql"].upper()
