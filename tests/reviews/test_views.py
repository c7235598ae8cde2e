"""Review pages: queues, action page, decisions, audit verdicts (server side; the browser
flow is in tests/browser)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployments.models import AuditEvent, Member
from reviews import selectors
from reviews.claims import proposed_action_claim, proposed_action_claim_next
from reviews.models import Decision, ProposedAction
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory
from tests.support.counters import evidence_totals

Status = ProposedAction.Status


def client_for(member: Member) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


def decide(client: Client, action: ProposedAction, htmx: bool = False, **data):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("reviews:decide", args=[action.pk]), data, **headers)


@pytest.fixture
def rc(reviewer) -> Client:
    return client_for(reviewer)


@pytest.fixture
def sc(senior) -> Client:
    return client_for(senior)


# ---------------------------------------------------------------------------------------
# Queues
# ---------------------------------------------------------------------------------------


def test_home_sends_members_to_their_queue(rc):
    response = rc.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("reviews:queue")


def test_home_without_a_role_explains(db):
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    response = client.get("/")
    assert response.status_code == 200 and b"no role yet" in response.content


def test_reviewer_queue_lists_only_pending_review_of_assigned_deployments(rc, deployment):
    mine = ProposedActionFactory(deployment=deployment, action_type="refund.issue")
    ProposedActionFactory(deployment=deployment, status=Status.PENDING_SENIOR)
    ProposedActionFactory(deployment=deployment, status=Status.APPROVED)
    other = ProposedActionFactory()  # another deployment
    response = rc.get(reverse("reviews:queue"))
    assert response.status_code == 200
    ids = [row.action.pk for row in response.context["page"].rows]
    assert ids == [mine.pk]
    assert f"#{other.pk}<" not in response.content.decode()


def test_queue_rows_show_deployment_type_summary_scores_age_and_sla(rc, deployment):
    ProposedActionFactory(
        deployment=deployment,
        action_type="refund.issue",
        payload={"order": "ORD-77", "amount_cents": 4500},
        risk_score=0.42,
        confidence=0.81,
    )
    html = rc.get(reverse("reviews:queue")).content.decode()
    for text in (deployment.name, "refund.issue", "order=ORD-77 · amount_cents=4500", "0.42", "0.81", "hours"):
        assert text in html, text


def test_queue_filters_by_deployment_and_action_type(deployment):
    second = DeploymentFactory()
    member = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment, second])
    a = ProposedActionFactory(deployment=deployment, action_type="refund.issue")
    b = ProposedActionFactory(deployment=second, action_type="refund.issue")
    c = ProposedActionFactory(deployment=second, action_type="invoice.match")
    client = client_for(member)

    def ids(**params):
        return [r.action.pk for r in client.get(reverse("reviews:queue"), params).context["page"].rows]

    assert ids() == [a.pk, b.pk, c.pk]
    assert ids(deployment=second.pk) == [b.pk, c.pk]
    assert ids(action_type="refund.issue") == [a.pk, b.pk]
    assert ids(deployment=second.pk, action_type="invoice.match") == [c.pk]
    assert ids(deployment="not-a-number") == [a.pk, b.pk, c.pk]


def test_keyset_pagination_walks_every_item_once_even_with_equal_timestamps(rc, deployment, monkeypatch):
    monkeypatch.setattr(selectors, "PAGE_SIZE", 3)
    actions = [ProposedActionFactory(deployment=deployment) for _ in range(8)]
    same = timezone.now() - timedelta(minutes=5)
    ProposedAction.objects.filter(pk__in=[a.pk for a in actions[2:6]]).update(created_at=same)
    seen, params = [], {}
    for _ in range(5):
        response = rc.get(reverse("reviews:queue"), params)
        page = response.context["page"]
        seen += [r.action.pk for r in page.rows]
        if not page.next_cursor:
            break
        assert "Next page" in response.content.decode()
        params = {"after": page.next_cursor}
    assert sorted(seen) == sorted(a.pk for a in actions)
    assert len(seen) == len(set(seen))


def test_queue_page_uses_no_offset_and_no_count(rc, deployment, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(5):
        ProposedActionFactory(deployment=deployment)
    rc.get(reverse("reviews:queue"))  # warm the session
    with CaptureQueriesContext(connection) as ctx:
        rc.get(reverse("reviews:queue"), {"after": selectors.cursor_encode(ProposedAction.objects.first())})
    sql = " ".join(q["sql"].upper() for q in ctx.captured_queries)
    assert "OFFSET" not in sql and "COUNT(" not in sql


@pytest.mark.parametrize("n", [3, 40])
def test_queue_page_query_count_does_not_grow_with_rows(rc, deployment, n, django_assert_max_num_queries):
    for i in range(n):
        ProposedActionFactory(deployment=DeploymentFactory() if i % 2 else deployment)
    ProposedAction.objects.update(deployment=deployment)
    with django_assert_max_num_queries(7):
        response = rc.get(reverse("reviews:queue"))
    assert len(response.context["page"].rows) == n


def test_senior_and_audit_queue_query_counts(sc, deployment, django_assert_max_num_queries):
    for _ in range(10):
        ProposedActionFactory(deployment=deployment, status=Status.PENDING_SENIOR)
        ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True)
    for name in ("reviews:senior_queue", "reviews:audit_queue"):
        # 7, and one for the top bar's claim (who escalated is one more on the senior queue: 8 there)
        with django_assert_max_num_queries(8 if name == "reviews:audit_queue" else 9):
            response = sc.get(reverse(name))
        assert len(response.context["page"].rows) == 10


def test_audit_queue_lists_samples_without_a_verdict(sc, deployment):
    waiting = ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True)
    ProposedActionFactory(
        deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True, audit_verdict="correct"
    )
    ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto")
    rows = sc.get(reverse("reviews:audit_queue")).context["page"].rows
    assert [r.action.pk for r in rows] == [waiting.pk]


def test_htmx_poll_returns_only_the_rows(rc, deployment):
    ProposedActionFactory(deployment=deployment)
    response = rc.get(reverse("reviews:queue"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-rows")
    html = response.content.decode()
    assert html.lstrip().startswith("<tbody") and "<html" not in html


def test_nav_counts_follow_the_role(rc, sc, deployment, django_assert_max_num_queries):
    for _ in range(2):
        ProposedActionFactory(deployment=deployment)
    ProposedActionFactory(deployment=deployment, status=Status.PENDING_SENIOR)
    ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True)
    ProposedActionFactory()  # not assigned
    html = rc.get(reverse("reviews:nav_counts")).content.decode()
    assert 'id="count-review" hx-swap-oob="true"' in html and ">2<" in html
    assert "count-senior" not in html and "count-audit" not in html
    with django_assert_max_num_queries(8):
        html = sc.get(reverse("reviews:nav_counts")).content.decode()
    for queue, n in (("review", 2), ("senior", 1), ("audit", 1)):
        # The count is part of its link's accessible name: "Senior 1 waiting".
        assert (
            f'id="count-{queue}" hx-swap-oob="true"> <span class="count-n">{n}</span><span class="sr-only"> waiting'
            in html
        )


def test_nav_counts_are_capped(rc, deployment, monkeypatch):
    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    for _ in range(5):
        ProposedActionFactory(deployment=deployment)
    assert selectors.queue_counts(member=rc.get(reverse("reviews:queue")).context["member"], cap=3) == {"review": 3}


def test_nav_shows_only_what_the_role_allows(rc, sc):
    reviewer_html = rc.get(reverse("reviews:queue")).content.decode()
    senior_html = sc.get(reverse("reviews:queue")).content.decode()
    assert reverse("reviews:senior_queue") not in reviewer_html
    assert reverse("reviews:audit_queue") not in reviewer_html
    assert reverse("reviews:senior_queue") in senior_html and reverse("reviews:audit_queue") in senior_html
    assert reverse("reviews:nav_counts") in reviewer_html
    assert "Sign out" in reviewer_html


def test_claim_next_opens_the_oldest_unclaimed_item(rc, reviewer, deployment):
    first, second = ProposedActionFactory(deployment=deployment), ProposedActionFactory(deployment=deployment)
    response = rc.post(reverse("reviews:claim_next"), {"queue": "review"})
    assert response["Location"] == reverse("reviews:action_detail", args=[first.pk])
    first.refresh_from_db()
    assert first.claimed_by_id == reviewer.user_id
    assert ProposedAction.objects.get(pk=second.pk).claimed_by_id is None


def test_claim_next_on_an_empty_queue_says_so(rc):
    response = rc.post(reverse("reviews:claim_next"), {"queue": "review"}, follow=True)
    assert b"Nothing left to claim" in response.content


# ---------------------------------------------------------------------------------------
# Action page
# ---------------------------------------------------------------------------------------

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)><b>bold</b>"


def test_action_page_renders_the_payload_escaped_and_inert(rc, deployment):
    action = ProposedActionFactory(
        deployment=deployment,
        payload={
            "note": HOSTILE,
            HOSTILE: "key with markup",
            "nested": {"lines": [HOSTILE, {"deep": "</td></tr></table><script>alert(2)</script>"}]},
            "long": "x" * 3000,
            "flag": True,
            "nothing": None,
        },
        rationale=HOSTILE,
        model_version="<i>v7</i>",
    )
    html = rc.get(reverse("reviews:action_detail", args=[action.pk])).content.decode()
    assert "<script>alert" not in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html and "<i>v7</i>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;alert(2)" in html
    assert '<table class="pv-object">' in html  # nested objects as nested tables
    assert '<ol class="pv-list" start="0">' in html
    # Value, key, list item, rationale and the JSON in the edit box: each one escaped.
    assert html.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 5


def test_action_page_shows_scores_rationale_model_and_history(rc, reviewer, deployment):
    action = ProposedActionFactory(
        deployment=deployment,
        risk_score=0.55,
        confidence=0.875,
        rationale="Customer double-charged",
        model_version="m-3",
    )
    proposed_action_claim(action_id=action.pk, actor=reviewer.user)
    decide(rc, action, decision="escalate", reason="amount looks wrong")
    senior_view = client_for(MemberFactory(role=Member.Role.SENIOR, deployments=[deployment]))
    html = senior_view.get(reverse("reviews:action_detail", args=[action.pk])).content.decode()
    for text in (
        "0.550",
        "0.875",
        "Customer double-charged",
        "m-3",
        "Escalated to the senior queue",
        "amount looks wrong",
    ):
        assert text in html, text
    # Each decision once in the history: its audit event (the same fact) is not listed again.
    assert html.count("Escalated to the senior queue (pending review →") == 1
    assert "reviews.action.escalated" not in html


def test_unknown_action_is_404(rc):
    assert rc.get(reverse("reviews:action_detail", args=[999999])).status_code == 404


# ---------------------------------------------------------------------------------------
# Decide
# ---------------------------------------------------------------------------------------


def test_approve_without_htmx_redirects_to_the_next_item_claimed(rc, reviewer, deployment):
    action, following = ProposedActionFactory(deployment=deployment), ProposedActionFactory(deployment=deployment)
    proposed_action_claim(action_id=action.pk, actor=reviewer.user)
    response = decide(rc, action, decision="approve")
    assert response.status_code == 302
    assert response["Location"] == reverse("reviews:action_detail", args=[following.pk])
    action.refresh_from_db()
    following.refresh_from_db()
    assert action.status == Status.APPROVED and action.claimed_by_id is None
    assert following.claimed_by_id == reviewer.user_id
    decision = Decision.objects.get(action=action)
    assert decision.verb == Decision.Verb.APPROVE and decision.actor_id == reviewer.user_id
    assert decision.claimed_at is not None and decision.seconds_to_decide >= 0
    assert AuditEvent.objects.filter(verb="reviews.action.approved", object_id=str(action.pk)).exists()


def test_approve_with_htmx_answers_the_next_item_as_a_partial(rc, reviewer, deployment):
    action, following = ProposedActionFactory(deployment=deployment), ProposedActionFactory(deployment=deployment)
    assert proposed_action_claim_next(actor=reviewer.user) == action  # in the Review-next flow
    response = decide(rc, action, htmx=True, decision="approve")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="action-panel"') and "<html" not in html
    assert f"Approved: #{action.pk}" in html and f'data-action-id="{following.pk}"' in html
    assert response["HX-Push-Url"] == reverse("reviews:action_detail", args=[following.pk])
    following.refresh_from_db()
    assert following.claimed_by_id == reviewer.user_id
    # The top bar's claim follows, out of band.
    assert 'id="my-claim" data-my-claim hx-swap-oob="true"' in html and f"#{following.pk} " in html


def test_a_decision_from_a_direct_link_claims_nothing(rc, reviewer, deployment):
    action, following = ProposedActionFactory(deployment=deployment), ProposedActionFactory(deployment=deployment)
    response = decide(rc, action, htmx=True, decision="approve")
    assert response.status_code == 200 and "HX-Push-Url" not in response
    html = response.content.decode()
    # The same item, decided: it says so in words and offers the next one.
    assert f'data-action-id="{action.pk}"' in html and f"Approved: #{action.pk}" in html
    assert f"Approved by {reviewer.user.username} " in html and "press <kbd>n</kbd>" in html
    assert not ProposedAction.objects.filter(claimed_by=reviewer.user).exists()
    response = decide(rc, following, decision="reject", reason="no")
    assert response.status_code == 302 and response["Location"] == reverse("reviews:action_detail", args=[following.pk])
    assert not ProposedAction.objects.filter(claimed_by=reviewer.user).exists()


def test_last_item_goes_back_to_the_queue(rc, reviewer, deployment):
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_claim_next(actor=reviewer.user)
    response = decide(rc, action, htmx=True, decision="reject", reason="duplicate")
    assert response.status_code == 204 and response["HX-Redirect"] == reverse("reviews:queue")
    last = ProposedActionFactory(deployment=deployment)
    proposed_action_claim_next(actor=reviewer.user)
    response = decide(rc, last, decision="approve")
    assert response.status_code == 302 and response["Location"] == reverse("reviews:queue")


@pytest.mark.parametrize("decision", ["reject", "escalate"])
def test_reject_and_escalate_need_a_reason(rc, deployment, decision):
    action = ProposedActionFactory(deployment=deployment)
    response = decide(rc, action, decision=decision, reason="   ")
    assert response.status_code == 422
    assert f"A reason is required to {decision}" in response.content.decode()
    action.refresh_from_db()
    assert action.status == Status.PENDING_REVIEW and not Decision.objects.exists()


def test_reject_records_the_reason(rc, deployment):
    action = ProposedActionFactory(deployment=deployment)
    decide(rc, action, decision="reject", reason="customer already refunded")
    action.refresh_from_db()
    assert action.status == Status.REJECTED and action.reason == "customer already refunded"


def test_unknown_decision_is_a_message(rc, deployment):
    action = ProposedActionFactory(deployment=deployment)
    response = decide(rc, action, decision="delete")
    assert response.status_code == 422 and b"Choose approve, reject or escalate" in response.content


def test_deciding_an_already_decided_item_changes_nothing_and_says_so(rc, sc, senior, deployment):
    action = ProposedActionFactory(deployment=deployment)
    assert decide(sc, action, decision="reject", reason="no").status_code == 302
    for htmx in (False, True):
        response = decide(rc, action, htmx=htmx, decision="approve")
        assert response.status_code == 409
        # Who and when, said once.
        text = response.content.decode()
        assert f"Nothing was changed: rejected by {senior.user.username} " in text and " ago." in text
        assert text.lower().count("rejected by") == 1  # said once: the refusal takes the state line's place
    action.refresh_from_db()
    assert action.status == Status.REJECTED and Decision.objects.filter(action=action).count() == 1


def test_an_item_claimed_by_someone_else_cannot_be_decided(rc, senior, deployment):
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_claim(action_id=action.pk, actor=senior.user)
    response = decide(rc, action, decision="approve")
    assert response.status_code == 409 and "is working on this item" in response.content.decode()
    assert ProposedAction.objects.get(pk=action.pk).status == Status.PENDING_REVIEW


def test_escalated_item_goes_to_seniors_and_reviewers_cannot_decide_it(rc, sc, deployment):
    action = ProposedActionFactory(deployment=deployment)
    decide(rc, action, decision="escalate", reason="too large")
    action.refresh_from_db()
    assert action.status == Status.PENDING_SENIOR
    response = decide(rc, action, decision="approve")
    assert response.status_code == 403 and "only senior reviewers" in response.content.decode()
    html = rc.get(reverse("reviews:action_detail", args=[action.pk])).content.decode()
    assert 'id="approve-button"' not in html
    senior_html = sc.get(reverse("reviews:action_detail", args=[action.pk])).content.decode()
    assert 'id="approve-button"' in senior_html and 'id="escalate-button"' not in senior_html
    decide(sc, action, decision="approve")
    assert ProposedAction.objects.get(pk=action.pk).status == Status.APPROVED


def test_edited_payload_is_validated_and_the_diff_confirmed_first(rc, deployment):
    action = ProposedActionFactory(deployment=deployment, payload={"amount_cents": 1200, "order": "A-1"})
    response = decide(rc, action, decision="approve", payload="{not json")
    assert response.status_code == 422 and "not valid JSON" in response.content.decode()
    response = decide(rc, action, decision="approve", payload="[1, 2]")
    assert response.status_code == 422 and "must be a JSON object" in response.content.decode()
    response = decide(rc, action, decision="reject", reason="x", payload='{"a": 1}')
    assert response.status_code == 422 and "can only be approved" in response.content.decode()

    edited = '{"amount_cents": 900, "order": "A-1", "note": "partial"}'
    response = decide(rc, action, htmx=True, decision="approve", payload=edited)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="payload-diff"' in html
    assert "amount_cents" in html and "1200" in html and "900" in html and "added" in html
    assert ProposedAction.objects.get(pk=action.pk).status == Status.PENDING_REVIEW

    response = decide(rc, action, decision="approve", payload=edited, confirm="1", reason="partial refund")
    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == Status.APPROVED
    assert action.final_payload == {"amount_cents": 900, "order": "A-1", "note": "partial"}
    assert Decision.objects.get(action=action).verb == Decision.Verb.EDIT


def test_unchanged_payload_is_a_plain_approval(rc, deployment):
    action = ProposedActionFactory(deployment=deployment, payload={"b": 2, "a": 1})
    decide(rc, action, decision="approve", payload='{"a": 1, "b": 2}')
    assert Decision.objects.get(action=action).verb == Decision.Verb.APPROVE


def test_release_gives_the_item_back(rc, reviewer, deployment):
    action = ProposedActionFactory(deployment=deployment)
    proposed_action_claim(action_id=action.pk, actor=reviewer.user)
    response = rc.post(reverse("reviews:release", args=[action.pk]))
    assert response.status_code == 302
    assert ProposedAction.objects.get(pk=action.pk).claimed_by_id is None


def test_claim_button_and_conflict_message(rc, senior, reviewer, deployment):
    action = ProposedActionFactory(deployment=deployment)
    rc.post(reverse("reviews:claim", args=[action.pk]))
    assert ProposedAction.objects.get(pk=action.pk).claimed_by_id == reviewer.user_id
    other = client_for(senior)
    response = other.post(reverse("reviews:claim", args=[action.pk]), follow=True)
    assert "Not claimed:" in response.content.decode()
    assert ProposedAction.objects.get(pk=action.pk).claimed_by_id == reviewer.user_id


# ---------------------------------------------------------------------------------------
# Audit verdicts
# ---------------------------------------------------------------------------------------


def test_audit_verdict_from_the_page(sc, deployment):
    sample = ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True)
    html = sc.get(reverse("reviews:action_detail", args=[sample.pk])).content.decode()
    assert 'id="audit-correct-form"' in html
    response = sc.post(reverse("reviews:audit_verdict", args=[sample.pk]), {"verdict": "incorrect", "reason": ""})
    assert response.status_code == 422 and "reason is required" in response.content.decode()
    response = sc.post(
        reverse("reviews:audit_verdict", args=[sample.pk]), {"verdict": "incorrect", "reason": "wrong PO"}
    )
    # Reached by its link (not claimed through Review next): back to the item, now decided.
    assert response.status_code == 302 and response["Location"] == reverse("reviews:action_detail", args=[sample.pk])
    sample.refresh_from_db()
    assert sample.audit_verdict == "incorrect"
    assert evidence_totals(deployment_id=deployment.pk)[("refund.issue", "audit.incorrect")] == 1
    again = sc.post(reverse("reviews:audit_verdict", args=[sample.pk]), {"verdict": "correct"})
    assert again.status_code == 409 and "Nothing was changed: audited: incorrect by" in again.content.decode()


def test_action_page_query_count_does_not_grow_with_history(rc, sc, deployment, django_assert_max_num_queries):
    actions = [ProposedActionFactory(deployment=deployment) for _ in range(4)]
    target = actions[1]
    # 10, and one for the claim the top bar shows.
    with django_assert_max_num_queries(11):
        assert rc.get(reverse("reviews:action_detail", args=[target.pk])).status_code == 200
    decide(rc, target, decision="escalate", reason="needs a senior")
    for other in actions[2:]:
        decide(rc, other, decision="escalate", reason="also")
    with django_assert_max_num_queries(11):
        html = sc.get(reverse("reviews:action_detail", args=[target.pk])).content.decode()
    assert "Escalated to the senior queue" in html and "needs a senior" in html
    assert 'data-shortcut="next"' in html  # neighbours in the senior queue


def test_claim_next_view_query_count(rc, deployment, django_assert_max_num_queries):
    for _ in range(20):
        ProposedActionFactory(deployment=deployment)
    with django_assert_max_num_queries(10):
        assert rc.post(reverse("reviews:claim_next"), {"queue": "review"}).status_code == 302


@pytest.mark.parametrize(
    "params",
    [
        {"after": "garbage"},
        {"after": "2026-01-01T00:00:00~notanid"},
        {"after": "2026-01-01T00:00:00~5"},  # no time zone
        {"after": "2026-01-01T00:00:00+00:00~99999999999999999999999"},
        {"deployment": "99999999999999999999999"},
        {"action_type": "x" * 5000},
    ],
)
def test_bad_queue_parameters_are_not_errors(rc, deployment, params):
    ProposedActionFactory(deployment=deployment)
    assert rc.get(reverse("reviews:queue"), params).status_code == 200


def test_huge_action_ids_are_404(rc):
    assert rc.get("/actions/99999999999999999999999/").status_code == 404
    assert rc.post("/actions/99999999999999999999999/decide", {"decision": "approve"}).status_code == 404


def test_leaving_an_item_releases_quietly_and_n_on_an_item_takes_the_next(rc, reviewer, deployment):
    first, second = ProposedActionFactory(deployment=deployment), ProposedActionFactory(deployment=deployment)
    assert proposed_action_claim_next(actor=reviewer.user) == first
    # n on the item page (skip=this item) moves the one claim on to the next item.
    response = rc.post(reverse("reviews:claim_next"), {"queue": "review", "skip": first.pk})
    assert response["Location"] == reverse("reviews:action_detail", args=[second.pk])
    assert list(ProposedAction.objects.filter(claimed_by=reviewer.user)) == [second]
    # The page's beacon as it goes away: 204, no message left for the next page.
    response = rc.post(reverse("reviews:release", args=[second.pk]), {"quiet": "1"})
    assert response.status_code == 204
    assert not ProposedAction.objects.filter(claimed_by=reviewer.user).exists()
    assert "Released" not in rc.get(reverse("reviews:queue")).content.decode()


def test_the_live_state_line_is_cheap_and_says_who_decided(rc, sc, senior, deployment, django_assert_max_num_queries):
    action = ProposedActionFactory(deployment=deployment)
    url = reverse("reviews:action_detail", args=[action.pk]) + "?part=state"
    with django_assert_max_num_queries(5):
        html = rc.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert html.lstrip().startswith('<div class="item-state"') and 'data-open="true"' in html
    assert 'hx-trigger="every 5s"' in html and "Not claimed" in html
    decide(sc, action, decision="approve")
    html = rc.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-open="false"' in html and f"Approved by {senior.user.username} " in html
    assert "hx-trigger" not in html  # closed: polling stops
