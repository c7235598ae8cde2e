"""Blind review and double review in a real browser, with the keyboard; double review from
two browser contexts (two people at once)."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from deployments.counters import Metric
from deployments.models import Member
from deployments.services import member_create
from reviews.humans.models import BlindAnswer, DoubleVote
from reviews.models import ProposedAction
from tests.browser.test_review_flow import PASSWORD, keys, sign_in
from tests.factories import DeploymentFactory, ProposedActionFactory
from tests.humans.support import evidence

Status = ProposedAction.Status
pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "PROPOSAL-ONLY-VALUE"


def test_blind_sample_answer_first_then_the_proposal_then_decide(live_server, page: Page):
    deployment = DeploymentFactory(stage="approval", blind_input_fields=["order", "customer"])
    member_create(username="rita", role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    action = ProposedActionFactory(
        deployment=deployment,
        stage="approval",
        review_sample="blind",
        payload={"order": "ORD-9", "customer": "C-4", "amount_cents": 3100, "memo": SECRET},
        rationale=SECRET,
        confidence=0.9321,
    )
    sign_in(page, live_server.url, "rita")
    row = page.locator(f'tr[data-id="{action.pk}"]')
    expect(row).to_contain_text("blind sample")
    expect(page.locator("[data-queue-rows]")).not_to_contain_text(SECRET)

    # Take it from the queue with the keyboard (n: Review next, so the decision goes on to the
    # queue): inputs shown, nothing of the proposal.
    page.locator("h1").click()
    keys(page, "j", "n")
    expect(page).to_have_url(re.compile(rf"/actions/{action.pk}/$"))
    expect(page.locator("#blind-badge")).to_be_visible()
    expect(page.locator("#blind-inputs")).to_contain_text("ORD-9")
    expect(page.locator("#blind-inputs")).to_contain_text("C-4")
    expect(page.locator("body")).not_to_contain_text(SECRET)
    expect(page.locator("body")).not_to_contain_text("0.932")

    # Type the answer (Tab reaches the field), leave it with Escape, record it with a.
    page.locator("#blind-payload").focus()
    page.keyboard.type('{"order": "ORD-9", "customer": "C-4", "amount_cents": 2000}')
    keys(page, "Escape", "a")
    expect(page.get_by_role("status")).to_contain_text("Your answer is recorded")
    expect(page.locator("#blind-answer")).to_contain_text("differs from the AI")
    expect(page.locator("#payload")).to_contain_text(SECRET)  # the proposal, revealed
    answer = BlindAnswer.objects.get(action=action)
    assert (answer.decision, answer.agree, answer.payload["amount_cents"]) == ("approve", False, 2000)
    assert evidence(deployment, Metric.BLIND_DISAGREE) == 1

    # Now the ordinary decision, by keyboard: r, a reason, Enter.
    page.locator("h1").click()
    keys(page, "r")
    expect(page.locator("#reject-reason")).to_be_focused()
    page.keyboard.type("amount too high")
    keys(page, "Enter")
    expect(page).to_have_url(re.compile(r"/queue/$"))
    assert ProposedAction.objects.get(pk=action.pk).status == Status.REJECTED


def test_blind_rejection_answer_is_keyboard_only(live_server, page: Page):
    deployment = DeploymentFactory(stage="approval")
    member_create(username="rita", role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    action = ProposedActionFactory(deployment=deployment, stage="approval", review_sample="blind")
    sign_in(page, live_server.url, "rita")
    page.goto(f"{live_server.url}/actions/{action.pk}/")
    page.locator("h1").click()
    keys(page, "r")
    expect(page.locator("#reject-reason")).to_be_focused()
    page.keyboard.type("not a real order")
    keys(page, "Enter")
    expect(page.locator("#blind-answer")).to_contain_text("reject")
    assert BlindAnswer.objects.get(action=action).reason == "not a real order"


def test_double_review_from_two_browser_contexts(live_server, browser: Browser):
    deployment = DeploymentFactory(stage="approval")
    for name in ("ann", "ben"):
        member_create(username=name, role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    member_create(username="sam", role=Member.Role.SENIOR, password=PASSWORD, deployments=[deployment])
    action = ProposedActionFactory(
        deployment=deployment, stage="approval", review_sample="double", payload={"order": "ORD-5", "amount_cents": 700}
    )
    base = live_server.url
    ann_context, ben_context = browser.new_context(), browser.new_context()
    ann, ben = ann_context.new_page(), ben_context.new_page()
    try:
        sign_in(ann, base, "ann")
        sign_in(ben, base, "ben")
        # Both open it at once; each sees "0 of 2" and may decide.
        for page in (ann, ben):
            page.goto(f"{base}/actions/{action.pk}/")
            expect(page.locator("#double-state")).to_contain_text("0 of 2")

        # Ann approves with the keyboard: recorded as 1 of 2, nothing executed.
        ann.locator("h1").click()
        keys(ann, "a")
        expect(ann.locator(".messages, [role=status]").first).to_contain_text("1 of 2")
        assert ProposedAction.objects.get(pk=action.pk).status == Status.PENDING_REVIEW
        ann.goto(f"{base}/actions/{action.pk}/")
        expect(ann.locator("#double-state")).to_contain_text("You gave yours")
        expect(ann.locator("#approve-button")).to_have_count(0)

        # Ben reloads: 1 of 2, but not Ann's decision; he rejects.
        ben.reload()
        expect(ben.locator("#double-state")).to_contain_text("1 of 2")
        expect(ben.locator("#double-state")).not_to_contain_text("approve")
        expect(ben.locator("#double-votes")).to_have_count(0)
        ben.locator("h1").click()
        keys(ben, "r")
        ben.keyboard.type("wrong order")
        keys(ben, "Enter")
        expect(ben.locator(".messages, [role=status]").first).to_contain_text("a senior settles it")
        assert ProposedAction.objects.get(pk=action.pk).status == Status.PENDING_SENIOR
        assert DoubleVote.objects.filter(action=action).count() == 2

        # The senior sees both decisions and settles it.
        ann_context.clear_cookies()
        sign_in(ann, base, "sam")
        ann.goto(f"{base}/actions/{action.pk}/")
        expect(ann.locator("#double-votes")).to_contain_text("ann")
        expect(ann.locator("#double-votes")).to_contain_text("wrong order")
        ann.locator("h1").click()
        keys(ann, "a")  # opened by its link: the same item, decided (nothing claimed)
        expect(ann.get_by_role("status").first).to_contain_text(f"Approved: #{action.pk}")
        assert ProposedAction.objects.get(pk=action.pk).status == Status.APPROVED
        assert evidence(deployment, Metric.DOUBLE_HH_DIFFER) == 1
    finally:
        ann_context.close()
        ben_context.close()
