"""Claims follow intent and item pages stay true, with two people in two browser contexts:
only Review next claims; leaving an item (j/k, a link, closing the tab) gives its claim back;
the top bar shows the one claim you hold; an item decided or claimed elsewhere says so in
words, disables its buttons and offers `n`; a refusal says who and when, once."""

import re
import time

import pytest
from playwright.sync_api import Browser, Page, expect

from reviews.models import ProposedAction
from reviews.services import proposed_action_decide
from tests.browser.support import keys, open_for_keys, review_team, sign_in

Status = ProposedAction.Status
PASSWORD = "browser-test-pw-1"
LIVE = 12_000  # ms: the item page polls its state every 5 s

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(db):
    return review_team([{"n": n} for n in range(1, 6)], PASSWORD)


def claimed_by(action: ProposedAction) -> int | None:
    return ProposedAction.objects.values_list("claimed_by_id", flat=True).get(pk=action.pk)


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def two(browser: Browser, live_server, world):
    """rita and sam, each in a browser context of their own."""
    contexts = [browser.new_context(), browser.new_context()]
    pages = [c.new_page() for c in contexts]
    sign_in(pages[0], live_server.url, "rita", PASSWORD)
    sign_in(pages[1], live_server.url, "sam", PASSWORD)
    yield pages
    for context in contexts:
        context.close()


def test_only_review_next_claims_and_leaving_gives_the_claim_back(live_server, two, world):
    rita, sam = two
    base = live_server.url
    first, second = world["items"][0], world["items"][1]
    # Opening an item by its link claims nothing.
    open_for_keys(rita, f"{base}/actions/{first.pk}/")
    expect(rita.locator("#item-state")).to_contain_text("Not claimed")
    assert claimed_by(first) is None
    # Review next claims; the top bar shows the one claim, with Release.
    open_for_keys(rita, base + "/queue/")
    keys(rita, "n")
    expect(rita).to_have_url(re.compile(rf"/actions/{first.pk}/$"))
    assert claimed_by(first) == world["rita"].user_id
    top = rita.locator("[data-my-claim]")
    expect(top).to_contain_text(f"Your claim: #{first.pk}")
    expect(top.get_by_role("button", name=f"Release #{first.pk}")).to_be_visible()
    # Sam, in his own browser, sees who holds it; his buttons are disabled.
    sam.goto(f"{base}/actions/{first.pk}/")
    expect(sam.locator("#item-state")).to_contain_text(re.compile(r"rita is working on this \(claimed \d+ s ago\)"))
    expect(sam.get_by_role("button", name=re.compile("^Approve"))).to_be_disabled()
    # rita moves on with j: the claim on the item she left is given back at once …
    rita.locator("h1").click()
    keys(rita, "j")
    expect(rita).to_have_url(re.compile(rf"/actions/{second.pk}/$"))
    wait_until(lambda: claimed_by(first) is None)
    assert claimed_by(second) is None  # … and moving on is not claiming
    # … and Sam's page sees it without a reload: the buttons come back.
    expect(sam.get_by_role("button", name=re.compile("^Approve"))).to_be_enabled(timeout=LIVE)
    # Sam decides it from his direct link: nothing is claimed for him.
    sam.locator("h1").click()
    keys(sam, "a")
    expect(sam.get_by_role("status").first).to_contain_text(f"Approved: #{first.pk}")
    assert not ProposedAction.objects.filter(claimed_by=world["sam"].user).exists()

    # n on an item page claims the next item; following a navigation link releases it.
    rita.locator("h1").click()
    keys(rita, "n")
    expect(rita).not_to_have_url(re.compile(rf"/actions/{second.pk}/$"))
    held = ProposedAction.objects.get(claimed_by=world["rita"].user)
    rita.get_by_role("navigation", name="Main").get_by_role("link", name="Deployments").click()
    expect(rita).to_have_url(re.compile(r"/deployments/$"))
    wait_until(lambda: claimed_by(held) is None)
    rita.reload()  # the beacon may land after this page was served: the next page knows
    expect(rita.locator("[data-my-claim]")).to_have_text("")

    # Closing the tab releases too (the page's beacon as it goes away).
    open_for_keys(rita, base + "/queue/")
    keys(rita, "n")
    expect(rita).to_have_url(re.compile(r"/actions/\d+/$"))
    held = ProposedAction.objects.get(claimed_by=world["rita"].user)
    rita.close(run_before_unload=True)
    wait_until(lambda: claimed_by(held) is None)


def test_an_item_decided_elsewhere_says_so_and_a_refusal_says_who_once(live_server, two, world):
    rita, sam = two
    base = live_server.url
    item, other = world["items"][2], world["items"][3]
    open_for_keys(rita, f"{base}/actions/{item.pk}/")
    # Sam approves it in his browser; rita's page learns it without a reload.
    open_for_keys(sam, f"{base}/actions/{item.pk}/")
    keys(sam, "a")
    expect(sam.get_by_role("status").first).to_contain_text(f"Approved: #{item.pk}")
    state = rita.locator("#item-state")
    expect(state).to_contain_text(re.compile(r"Approved by sam \d+ s ago"), timeout=LIVE)
    expect(state).to_contain_text("press n for the next item")
    expect(rita.get_by_role("button", name=re.compile("^Approve"))).to_be_disabled()
    expect(rita.get_by_label("Reason to reject")).to_be_disabled()
    keys(rita, "a")  # a disabled button: nothing is sent
    assert ProposedAction.objects.get(pk=item.pk).decisions.count() == 1
    keys(rita, "n")  # offered: the next item
    expect(rita).to_have_url(re.compile(r"/actions/\d+/$"))
    expect(rita).not_to_have_url(re.compile(rf"/actions/{item.pk}/$"))

    # Decided in the moment between two polls: the refusal says who and when, once.
    open_for_keys(rita, f"{base}/actions/{other.pk}/")
    proposed_action_decide(action_id=other.pk, actor=world["sam"].user, decision="reject", reason="duplicate")
    keys(rita, "a")
    refusal = rita.locator("#decide-error")
    expect(refusal).to_contain_text(re.compile(r"Nothing was changed: rejected by sam \d+ s ago\."))
    expect(refusal).to_be_focused()
    assert rita.locator("[data-action-detail]").inner_text().lower().count("rejected by sam") == 1
    expect(rita.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)  # shown as it is now
    expect(rita.get_by_role("button", name="Review next n")).to_be_visible()
    assert ProposedAction.objects.get(pk=other.pk).status == Status.REJECTED


def test_an_item_claimed_elsewhere_blocks_and_then_frees_live(live_server, two, world, page: Page):
    rita, sam = two
    base = live_server.url
    open_for_keys(sam, base + "/queue/")
    keys(sam, "n")  # Sam claims the oldest item
    expect(sam).to_have_url(re.compile(rf"/actions/{world['items'][0].pk}/$"))
    rita.goto(f"{base}/actions/{world['items'][0].pk}/")
    expect(rita.locator("#item-state")).to_contain_text("sam is working on this")
    expect(rita.get_by_role("button", name=re.compile("^Approve"))).to_be_disabled()
    # Sam gives it back from the top bar.
    sam.locator("[data-my-claim]").get_by_role("button", name=re.compile("Release")).click()
    expect(sam).to_have_url(re.compile(r"/queue/$|/queue/senior/$"))
    expect(rita.get_by_role("button", name=re.compile("^Approve"))).to_be_enabled(timeout=LIVE)
    expect(rita.locator("#item-state")).to_contain_text("Not claimed")
