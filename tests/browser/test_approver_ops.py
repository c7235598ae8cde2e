"""Approver operations in a real browser (issue 17 item 5): a quorum approved from two browser
contexts (two people at once), with the keyboard; axe-core on the quorum item, the away page
and the reviewer-quality page."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from deliveries.models import Delivery
from deployments.models import Delegation, Member
from deployments.services import member_create
from reviews.models import Decision, ProposedAction, QuorumApproval
from tests.browser.support import axe_violations, two_people
from tests.browser.test_review_flow import PASSWORD, keys, sign_in
from tests.factories import DeploymentFactory, ProposedActionFactory

Status = ProposedAction.Status
pytestmark = pytest.mark.django_db(transaction=True)


def test_quorum_of_two_from_two_browser_contexts(live_server, browser: Browser):
    deployment = DeploymentFactory(stage="approval", name="Refunds")
    for name in ("ann", "ben"):
        member_create(username=name, role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    action = ProposedActionFactory(
        deployment=deployment,
        action_type="refund.issue",
        payload={"order": "ORD-7", "amount_cents": 90000},
        approvals_required=2,
        callback_url="https://agent.example/hook",
    )
    base = live_server.url
    with two_people(browser, base, ("ann", "ben"), PASSWORD) as ((ann, _), (ben, _)):
        expect(ann.locator(f'tr[data-id="{action.pk}"] [data-quorum]')).to_have_text("0 of 2 approvals")
        for page in (ann, ben):
            page.goto(f"{base}/actions/{action.pk}/")
            expect(page.locator("#quorum")).to_have_text("0 of 2 approvals")
            expect(page.locator("[data-edit]")).to_have_count(0)  # one payload, N approvals: no editor
        assert not axe_violations(ann), axe_violations(ann)

        # Ann approves with the keyboard: recorded as 1 of 2, still pending, the agent not told.
        ann.locator("h1").click()
        keys(ann, "a")
        expect(ann.get_by_role("status").first).to_contain_text("1 of 2 approvals")
        assert ProposedAction.objects.get(pk=action.pk).status == Status.PENDING_REVIEW
        assert not Delivery.objects.filter(object_id=str(action.pk)).exists()

        # Ann again: refused, nothing changed.
        ann.goto(f"{base}/actions/{action.pk}/")
        expect(ann.locator("#quorum-note")).to_contain_text("approved so far by ann")
        ann.locator("h1").click()
        keys(ann, "a")
        expect(ann.locator("#decide-error")).to_contain_text("already approved")
        assert QuorumApproval.objects.filter(action=action).count() == 1

        # Ben reloads: 1 of 2; his approval is the last and carries it out, once.
        ben.reload()
        expect(ben.locator("#quorum")).to_have_text("1 of 2 approvals")
        ben.locator("h1").click()
        keys(ben, "a")
        expect(ben.get_by_role("status").first).to_contain_text(f"Approved: #{action.pk}")
        done = ProposedAction.objects.get(pk=action.pk)
        assert (done.status, done.approvals_given) == (Status.APPROVED, 2)
        assert Decision.objects.get(action=action).actor.username == "ben"
        assert Delivery.objects.filter(object_id=str(action.pk), event_type="action.approved").count() == 1
        ben.goto(f"{base}/actions/{action.pk}/")
        expect(ben.locator("#quorum")).to_have_text("2 of 2 approvals")


def test_away_page_and_reviewer_quality_page_have_no_axe_violations(live_server, page: Page):
    deployment = DeploymentFactory(stage="approval", name="Refunds", slug="refunds")
    member_create(username="sam", role=Member.Role.SENIOR, password=PASSWORD, deployments=[deployment])
    member_create(username="rita", role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    base = live_server.url
    sign_in(page, base, "sam")
    page.goto(f"{base}/deployments/refunds/reviewers/")
    expect(page.locator("h1")).to_have_text("Reviewer quality")
    found = axe_violations(page)

    # The away page: a refusal shown at the form, then a delegation made by keyboard-reachable fields.
    page.get_by_role("link", name="Away").click()
    expect(page).to_have_url(re.compile(r"/account/away/$"))
    page.get_by_label("Who covers").select_option(label="rita (Reviewer)")
    page.get_by_label("From (UTC)").fill("2031-01-10T09:00")
    page.get_by_label("Until (UTC)").fill("2031-01-01T09:00")
    page.get_by_role("button", name="Hand over my queues").click()
    expect(page.locator("#away-error")).to_contain_text("the end must be after the start")
    found += axe_violations(page)
    page.get_by_label("Until (UTC)").fill("2031-01-20T09:00")
    page.get_by_label("Note (optional)").fill("conference")
    page.get_by_role("button", name="Hand over my queues").click()
    expect(page.get_by_role("status").first).to_contain_text("rita covers the queues of sam")
    expect(page.locator("[data-delegation]")).to_contain_text("conference")
    found += axe_violations(page)
    assert Delegation.objects.get().delegate.user.username == "rita"
    assert not found, "\n".join(found)
