"""Comparison, counters, adjudication and recompute through the services."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from deployments.errors import Conflict, InvalidInput, InvalidTransition, NotAllowed
from deployments.models import AuditEvent, EvidenceCount, Member
from reviews.models import ProposedAction
from reviews.shadow import services
from reviews.shadow.models import ShadowAdjudication, ShadowOutcome, ShadowRecompute, ShadowTally
from reviews.shadow.selectors import shadow_evidence
from tests.factories import MemberFactory, ProposedActionFactory
from tests.shadow.conftest import counters

pytestmark = pytest.mark.django_db


def shadow_action(deployment, external_id, payload, action_type="refund.issue", **kw):
    return ProposedActionFactory(
        deployment=deployment,
        external_id=external_id,
        payload=payload,
        action_type=action_type,
        route="shadow",
        stage="shadow",
        status="logged",
        expires_at=None,
        **kw,
    )


def outcome(deployment, external_id, payload, action_type="refund.issue"):
    return ShadowOutcome.objects.create(
        deployment=deployment, external_id=external_id, action_type=action_type, payload=payload
    )


def tallies(deployment) -> tuple[int, int]:
    t = ShadowTally.objects.filter(deployment=deployment).aggregate(a=Sum("agree"), d=Sum("disagree"))
    return t["a"] or 0, t["d"] or 0


def truth(deployment) -> tuple[int, int]:
    """Effective agreement recomputed from the actions table: what the counters must say."""
    agree = disagree = 0
    for a in ProposedAction.objects.filter(deployment=deployment, status="compared").select_related(
        "shadow_adjudication"
    ):
        if services.effective_agree(a.comparison, getattr(a, "shadow_adjudication", None)):
            agree += 1
        else:
            disagree += 1
    return agree, disagree


@pytest.fixture
def pairs(deployment):
    """Four pairs: equal, amount off by 3, reason in another case, tags in another order."""
    specs = [
        ({"amount": 100, "reason": "late", "tags": ["a", "b"]}, {"amount": 100, "reason": "late", "tags": ["a", "b"]}),
        ({"amount": 100, "reason": "late", "tags": ["a"]}, {"amount": 103, "reason": "late", "tags": ["a"]}),
        ({"amount": 100, "reason": "Late", "tags": ["a"]}, {"amount": 100, "reason": "late", "tags": ["a"]}),
        ({"amount": 100, "reason": "late", "tags": ["b", "a"]}, {"amount": 100, "reason": "late", "tags": ["a", "b"]}),
    ]
    actions = []
    for i, (ai, human) in enumerate(specs):
        actions.append(shadow_action(deployment, f"E-{i}", ai))
        outcome(deployment, f"E-{i}", human)
    return actions


def test_compare_batch_sets_status_comparison_and_counters(deployment, pairs):
    result = services.shadow_compare_actions(action_ids=[a.pk for a in pairs])
    assert result == {"compared": 4, "agree": 1}
    stored = {a.external_id: a for a in ProposedAction.objects.filter(deployment=deployment)}
    assert all(a.status == "compared" for a in stored.values())
    assert stored["E-1"].comparison == {
        "agree": False,
        "diff": [{"path": "amount", "kind": "changed", "ai": 100, "human": 103}],
    }
    assert counters(deployment) == tallies(deployment) == truth(deployment) == (1, 3)
    event = AuditEvent.objects.get(verb="reviews.shadow.compared")
    assert event.data["compared"] == 4 and event.data["agree"] == 1


def test_compare_is_safe_to_repeat(deployment, pairs):
    ids = [a.pk for a in pairs]
    services.shadow_compare_actions(action_ids=ids)
    assert services.shadow_compare_actions(action_ids=ids) == {"compared": 0, "agree": 0}
    assert counters(deployment) == (1, 3)


def test_compare_runs_a_constant_number_of_queries(deployment, django_assert_max_num_queries):
    actions = [shadow_action(deployment, f"E-{i}", {"i": i}) for i in range(60)]
    for i in range(60):
        outcome(deployment, f"E-{i}", {"i": i if i % 2 else -1})
    with django_assert_max_num_queries(10):
        services.shadow_compare_actions(action_ids=[a.pk for a in actions])
    assert counters(deployment) == (30, 30)


def test_counters_are_per_day_and_action_type(deployment):
    old = shadow_action(deployment, "O", {"x": 1}, action_type="a.b")
    ProposedAction.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    new = shadow_action(deployment, "N", {"x": 1}, action_type="c.d")
    outcome(deployment, "O", {"x": 1}, action_type="a.b")
    outcome(deployment, "N", {"x": 2}, action_type="c.d")
    services.shadow_compare_actions(action_ids=[old.pk, new.pk])
    rows = {
        (r.day, r.action_type, r.metric): r.n
        for r in EvidenceCount.objects.filter(deployment=deployment, metric__startswith="shadow.")
    }
    today = timezone.localdate()
    assert rows == {
        (today - timedelta(days=3), "a.b", "shadow.agree"): 1,
        (today, "c.d", "shadow.disagree"): 1,
    }


def test_actions_without_an_outcome_stay_logged(deployment):
    a = shadow_action(deployment, "X", {"x": 1})
    assert services.shadow_compare_actions(action_ids=[a.pk]) == {"compared": 0, "agree": 0}
    a.refresh_from_db()
    assert a.status == "logged" and a.comparison is None


def test_sweep_compares_everything_matched(deployment, pairs):
    shadow_action(deployment, "no-outcome", {"x": 1})
    assert services.shadow_compare_sweep(deployment_id=deployment.pk, batch_size=3) == 4
    assert ProposedAction.objects.filter(status="logged").count() == 1


def test_evidence_selector_gives_intervals_by_type_version_day_and_confusion(deployment):
    for i in range(10):
        shadow_action(deployment, f"E-{i}", {"x": 1}, model_version="v1" if i < 6 else "v2")
        outcome(deployment, f"E-{i}", {"x": 1 if i < 8 else 2}, action_type="refund.issue" if i != 9 else "refund.deny")
    services.shadow_compare_actions(action_ids=list(ProposedAction.objects.values_list("pk", flat=True)))
    e = shadow_evidence(deployment_id=deployment.pk)
    assert e["overall"]["n"] == 10 and e["overall"]["agree"] == 8
    assert 0 < e["overall"]["lower"] < 0.8 < e["overall"]["upper"] < 1
    assert e["by_action_type"]["refund.issue"]["n"] == 10
    assert e["by_model_version"]["v1"] == {**e["by_model_version"]["v1"], "n": 6, "agree": 6}
    assert e["by_model_version"]["v2"]["agree"] == 2 and e["by_model_version"]["v2"]["n"] == 4
    assert list(e["by_day"].values())[0]["n"] == 10
    assert e["confusion"] == {
        "ai_types": ["refund.issue"],
        "human_types": ["refund.deny", "refund.issue"],
        "rows": [("refund.issue", [1, 9])],
    }


# ---------------------------------------------------------------------------------------
# Adjudication
# ---------------------------------------------------------------------------------------
@pytest.fixture
def compared(deployment, pairs):
    services.shadow_compare_actions(action_ids=[a.pk for a in pairs])
    return {a.external_id: a for a in ProposedAction.objects.filter(deployment=deployment)}


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [("ai_right", (2, 2)), ("both_acceptable", (2, 2)), ("human_right", (1, 3))],
)
def test_adjudication_changes_the_evidence(deployment, compared, reviewer, verdict, expected):
    reviewer.deployments.add(deployment)
    services.shadow_adjudicate(action_id=compared["E-1"].pk, verdict=verdict, actor=reviewer.user, reason="ok")
    assert counters(deployment) == tallies(deployment) == truth(deployment) == expected
    assert shadow_evidence(deployment_id=deployment.pk)["adjudicated"] == {verdict: 1}
    event = AuditEvent.objects.get(verb=f"reviews.shadow.adjudicated.{verdict}")
    assert event.actor == reviewer.user and event.reason == "ok"


def test_adjudication_is_final_and_only_for_disagreements(deployment, compared, reviewer):
    reviewer.deployments.add(deployment)
    services.shadow_adjudicate(action_id=compared["E-1"].pk, verdict="ai_right", actor=reviewer.user)
    with pytest.raises(InvalidTransition, match="already adjudicated"):
        services.shadow_adjudicate(action_id=compared["E-1"].pk, verdict="human_right", actor=reviewer.user)
    with pytest.raises(InvalidTransition, match="nothing to adjudicate"):
        services.shadow_adjudicate(action_id=compared["E-0"].pk, verdict="ai_right", actor=reviewer.user)
    with pytest.raises(InvalidInput):
        services.shadow_adjudicate(action_id=compared["E-2"].pk, verdict="maybe", actor=reviewer.user)
    assert counters(deployment) == (2, 2)


def test_adjudication_needs_an_assigned_member(deployment, compared):
    stranger = MemberFactory(role=Member.Role.SENIOR)
    with pytest.raises(NotAllowed):
        services.shadow_adjudicate(action_id=compared["E-1"].pk, verdict="ai_right", actor=stranger.user)
    assert not ShadowAdjudication.objects.exists()


def test_a_delegate_adjudicates_for_the_delegator(deployment, compared):
    from django.utils import timezone

    from deployments.delegations import delegation_create

    owner = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    stand_in = MemberFactory(role=Member.Role.REVIEWER)
    now = timezone.now()
    delegation_create(
        actor=owner.user,
        delegator_id=owner.pk,
        delegate_id=stand_in.pk,
        starts_at=now,
        ends_at=now + timezone.timedelta(days=1),
    )
    services.shadow_adjudicate(action_id=compared["E-1"].pk, verdict="ai_right", actor=stand_in.user, reason="ok")
    event = AuditEvent.objects.get(verb="reviews.shadow.adjudicated.ai_right")
    assert event.actor == stand_in.user and event.data["on_behalf_of"] == owner.user.username


def test_logged_actions_cannot_be_adjudicated(deployment, reviewer):
    reviewer.deployments.add(deployment)
    a = shadow_action(deployment, "L", {"x": 1})
    with pytest.raises(InvalidTransition):
        services.shadow_adjudicate(action_id=a.pk, verdict="ai_right", actor=reviewer.user)


# ---------------------------------------------------------------------------------------
# Rules and recompute (eager: the task runs on commit, in-process)
# ---------------------------------------------------------------------------------------
def run_commit(capture, fn, **kw):
    with capture(execute=True):
        return fn(**kw)


def test_rules_change_recomputes_comparisons_and_counters(
    deployment, compared, admin, django_capture_on_commit_callbacks
):
    assert counters(deployment) == (1, 3)
    rules = {"numeric_tolerance": 5, "case_insensitive": ["reason"], "lists_as_sets": ["tags"]}
    _, recompute = run_commit(
        django_capture_on_commit_callbacks,
        services.comparison_rules_set,
        deployment_id=deployment.pk,
        rules=rules,
        actor=admin.user,
    )
    recompute.refresh_from_db()
    assert recompute.status == "done" and recompute.processed == 4 and recompute.changed == 3
    assert counters(deployment) == tallies(deployment) == truth(deployment) == (4, 0)
    assert ProposedAction.objects.get(pk=compared["E-1"].pk).comparison == {"agree": True, "diff": []}
    # and back: the counters follow
    run_commit(
        django_capture_on_commit_callbacks,
        services.comparison_rules_set,
        deployment_id=deployment.pk,
        rules={},
        actor=admin.user,
    )
    assert counters(deployment) == tallies(deployment) == truth(deployment) == (1, 3)
    verbs = list(AuditEvent.objects.filter(verb__startswith="reviews.shadow.r").values_list("verb", flat=True))
    assert verbs.count("reviews.shadow.rules_changed") == 2 and verbs.count("reviews.shadow.recompute_finished") == 2


def test_recompute_keeps_adjudications(deployment, compared, admin, reviewer, django_capture_on_commit_callbacks):
    reviewer.deployments.add(deployment)
    services.shadow_adjudicate(action_id=compared["E-1"].pk, verdict="ai_right", actor=reviewer.user)
    services.shadow_adjudicate(action_id=compared["E-2"].pk, verdict="human_right", actor=reviewer.user)
    assert counters(deployment) == (2, 2)
    run_commit(
        django_capture_on_commit_callbacks,
        services.comparison_rules_set,
        deployment_id=deployment.pk,
        rules={"case_insensitive": True},
        actor=admin.user,
    )
    # E-2 now agrees by rule; E-1 still disagrees by rule but was adjudicated AI right.
    assert counters(deployment) == tallies(deployment) == truth(deployment) == (3, 1)


def test_recompute_in_small_batches_reports_progress(deployment, compared):
    deployment.comparison_rules = {"numeric_tolerance": 5}
    deployment.save()
    recompute = ShadowRecompute.objects.create(deployment=deployment, rules=deployment.comparison_rules, total=4)
    assert services.shadow_recompute_step(recompute_id=recompute.pk, batch_size=3) is True
    recompute.refresh_from_db()
    assert (recompute.processed, recompute.percent, recompute.status) == (3, 75, "running")
    assert services.shadow_recompute_step(recompute_id=recompute.pk, batch_size=3) is False
    recompute.refresh_from_db()
    assert (recompute.processed, recompute.percent, recompute.status) == (4, 100, "done")
    assert services.shadow_recompute_step(recompute_id=recompute.pk) is False  # safe to repeat
    assert counters(deployment) == truth(deployment) == (2, 2)


def test_second_recompute_while_one_runs_is_refused(deployment, compared, admin):
    ShadowRecompute.objects.create(deployment=deployment, total=4)
    with pytest.raises(Conflict, match="already running"):
        services.shadow_recompute_start(deployment_id=deployment.pk, actor=admin.user)
    with pytest.raises(Conflict, match="recompute is running"):
        services.comparison_rules_set(deployment_id=deployment.pk, rules={"ignore": ["x"]}, actor=admin.user)
    assert ShadowRecompute.objects.filter(deployment=deployment).count() == 1


def test_unchanged_rules_start_nothing(deployment, admin):
    _, recompute = services.comparison_rules_set(deployment_id=deployment.pk, rules={}, actor=admin.user)
    assert recompute is None and not ShadowRecompute.objects.exists()


def test_invalid_rules_are_refused(deployment, admin):
    with pytest.raises(InvalidInput, match="numeric_tolerance"):
        services.comparison_rules_set(deployment_id=deployment.pk, rules={"numeric_tolerance": "x"}, actor=admin.user)


def test_new_comparisons_use_the_new_rules(deployment, admin):
    services.comparison_rules_set(deployment_id=deployment.pk, rules={"ignore": ["note"]}, actor=admin.user)
    a = shadow_action(deployment, "Z", {"x": 1, "note": "a"})
    outcome(deployment, "Z", {"x": 1, "note": "b"})
    services.shadow_compare_actions(action_ids=[a.pk])
    assert ProposedAction.objects.get(pk=a.pk).comparison["agree"] is True


def test_demo_history_writes_shadow_outcomes_tallies_and_comparisons_like_the_services(admin):
    from django.core.management import call_command

    from deployments.models import Deployment

    call_command("load_demo", "--days", "3")
    d = Deployment.objects.get(slug="support-triage")
    compared = ProposedAction.objects.filter(deployment=d, status="compared")
    assert compared.exists()
    assert ShadowOutcome.objects.filter(deployment=d).count() == compared.count()
    assert counters(d) == tallies(d) == truth(d)
    a = compared.filter(comparison__agree=False).first()
    assert a.comparison["diff"][0]["kind"] == "changed"
    # a recompute finds every outcome and changes nothing under the same (empty) rules
    services.shadow_recompute_start(deployment_id=d.pk, actor=admin.user)
    recompute = ShadowRecompute.objects.get(deployment=d)
    while services.shadow_recompute_step(recompute_id=recompute.pk):
        pass
    recompute.refresh_from_db()
    assert recompute.processed == compared.count() and recompute.changed == 0
