"""A reviewer and a senior work the queues in a real browser, with the keyboard."""

import re

import pytest
from playwright.sync_api import Page, expect

from deployments.models import Member
from deployments.services import member_create
from reviews.models import Decision, ProposedAction
from tests.factories import DeploymentFactory, ProposedActionFactory

Status = ProposedAction.Status
PASSWORD = "browser-test-pw-1"

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def keys(page: Page, *pressed: str) -> None:
    """Press keys once the page's shortcut script is listening."""
    page.locator("body[data-keys-ready]").wait_for(state="attached")
    for key in pressed:
        page.keyboard.press(key)


def test_reviewer_and_senior_work_the_queues_with_the_keyboard(live_server, page: Page):
    deployment = DeploymentFactory(stage="approval", name="Refunds")
    member_create(username="rita", role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    member_create(username="sam", role=Member.Role.SENIOR, password=PASSWORD, deployments=[deployment])
    first, second, third = (
        ProposedActionFactory(deployment=deployment, payload={"order": f"ORD-{n}", "amount_cents": n * 100})
        for n in (1, 2, 3)
    )
    base = live_server.url

    # The reviewer signs in and lands on the reviewer queue; counts arrive in the nav.
    sign_in(page, base, "rita")
    expect(page).to_have_url(re.compile(r"/queue/$"))
    expect(page.locator("#count-review .count-n")).to_have_text("3")
    expect(page.get_by_role("link", name=re.compile("Senior"))).to_have_count(0)
    expect(page.locator("[data-queue-rows] tr[data-id]")).to_have_count(3)

    # ? shows the shortcuts.
    page.locator("h1").click()
    keys(page, "?")
    expect(page.locator("#shortcuts")).to_be_visible()
    keys(page, "Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()

    # j selects the first row; n (Review next) claims and opens it, a approves it; the next
    # item slides in, claimed (a decision in the Review-next flow goes on).
    keys(page, "j")
    expect(page.locator(f'tr[data-id="{first.pk}"]')).to_have_class(re.compile("selected"))
    keys(page, "n")
    expect(page).to_have_url(re.compile(rf"/actions/{first.pk}/$"))
    expect(page.locator("#payload")).to_contain_text("ORD-1")
    page.locator("h1").click()
    keys(page, "a")
    expect(page.locator("[data-action-detail]")).to_have_attribute("data-action-id", str(second.pk))
    expect(page.get_by_role("status")).to_contain_text(f"Approved: #{first.pk}")
    expect(page).to_have_url(re.compile(rf"/actions/{second.pk}/$"))

    # r focuses the reason; Enter rejects.
    keys(page, "r")
    expect(page.locator("#reject-reason")).to_be_focused()
    page.keyboard.type("duplicate of ORD-1")
    keys(page, "Enter")
    expect(page.locator("[data-action-detail]")).to_have_attribute("data-action-id", str(third.pk))
    expect(page.get_by_role("status")).to_contain_text(f"Rejected: #{second.pk}")

    # e focuses the escalation reason; Enter escalates; the queue is empty, back to it.
    keys(page, "e")
    expect(page.locator("#escalate-reason")).to_be_focused()
    page.keyboard.type("amount needs a senior")
    keys(page, "Enter")
    expect(page).to_have_url(re.compile(r"/queue/$"))
    expect(page.locator(".messages")).to_contain_text("That was the last item")
    expect(page.locator("[data-queue-rows] tr[data-id]")).to_have_count(0)
    expect(page.locator("#count-review .count-n")).to_have_text("0")

    assert ProposedAction.objects.get(pk=first.pk).status == Status.APPROVED
    rejected = ProposedAction.objects.get(pk=second.pk)
    assert rejected.status == Status.REJECTED and rejected.reason == "duplicate of ORD-1"
    escalated = ProposedAction.objects.get(pk=third.pk)
    assert escalated.status == Status.PENDING_SENIOR and escalated.reason == "amount needs a senior"

    # The senior signs in, opens the senior queue and approves the escalated item.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    sign_in(page, base, "sam")
    expect(page.locator("#count-senior .count-n")).to_have_text("1")
    page.get_by_role("link", name=re.compile("Senior")).click()
    expect(page).to_have_url(re.compile(r"/queue/senior/$"))
    page.locator("h1").click()
    keys(page, "n")
    expect(page).to_have_url(re.compile(rf"/actions/{third.pk}/$"))
    expect(page.locator("#escalate-button")).to_have_count(0)  # seniors do not escalate further
    page.locator("h1").click()
    keys(page, "a")
    expect(page).to_have_url(re.compile(r"/queue/senior/$"))
    expect(page.locator(".messages")).to_contain_text(f"Approved: #{third.pk}")

    assert ProposedAction.objects.get(pk=third.pk).status == Status.APPROVED
    verbs = list(Decision.objects.order_by("id").values_list("verb", "actor__username"))
    assert verbs == [("approve", "rita"), ("reject", "rita"), ("escalate", "rita"), ("approve", "sam")]


def test_edit_then_approve_shows_the_diff_first(live_server, page: Page):
    deployment = DeploymentFactory(stage="approval")
    member_create(username="rita", role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    action = ProposedActionFactory(deployment=deployment, payload={"amount_cents": 1200, "order": "A-1"})
    sign_in(page, live_server.url, "rita")
    page.goto(f"{live_server.url}/actions/{action.pk}/")  # a direct link: nothing claimed
    page.get_by_text("Edit the payload, then approve").click()
    page.locator("#payload-editor").fill('{"amount_cents": 900, "order": "A-1"}')
    page.get_by_role("button", name="Review changes").click()
    expect(page.locator("#payload-diff")).to_contain_text("amount_cents")
    expect(page.locator("#payload-diff")).to_contain_text("900")
    assert ProposedAction.objects.get(pk=action.pk).status == Status.PENDING_REVIEW
    page.get_by_role("button", name="Confirm and approve").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Approved with your edits: #{action.pk}")
    expect(page).to_have_url(re.compile(rf"/actions/{action.pk}/$"))  # the same item, decided
    stored = ProposedAction.objects.get(pk=action.pk)
    assert stored.status == Status.APPROVED and stored.final_payload == {"amount_cents": 900, "order": "A-1"}


def test_payload_markup_is_inert_in_the_browser(live_server, page: Page):
    deployment = DeploymentFactory(stage="approval")
    member_create(username="rita", role=Member.Role.REVIEWER, password=PASSWORD, deployments=[deployment])
    hostile = '<script>window.__pwned = true</script><img src=x onerror="window.__pwned = true">'
    action = ProposedActionFactory(deployment=deployment, payload={"note": hostile, hostile: [hostile]})
    sign_in(page, live_server.url, "rita")
    page.goto(f"{live_server.url}/actions/{action.pk}/")
    expect(page.locator("#payload")).to_contain_text("<script>window.__pwned = true</script>")
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("#payload script, #payload img").count() == 0
