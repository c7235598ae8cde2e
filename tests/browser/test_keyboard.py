"""A complete keyboard: every key the help dialog (`?`) lists works where it is listed (the
test reads the list and presses each key), focus follows every swap, the tab title stays true."""

import json
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from reviews.models import ProposedAction
from tests.browser.support import keys, open_for_keys, review_team, sign_in
from tests.factories import ProposedActionFactory

Status = ProposedAction.Status
PASSWORD = "browser-test-pw-1"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(db):
    return review_team([{"zz": n, "amount_cents": n * 100} for n in range(1, 13)], PASSWORD)


def listed_keys(page: Page) -> list[str]:
    """The keys the help dialog of this page lists (its rows' data-key)."""
    page.locator("h1").first.click()
    keys(page, "?")
    dialog = page.locator("#shortcuts")
    expect(dialog).to_be_visible()
    listed = dialog.locator("tr[data-key]").evaluate_all("rows => rows.map(r => r.dataset.key)")
    keys(page, "Escape")
    expect(dialog).to_be_hidden()
    return listed


def check_every_listed_key(
    page: Page, url: str | Callable[[], str], checks: dict[str, Callable[[], None]]
) -> list[str]:
    """Read the help of the page at `url` (or `url()`, asked afresh before each key, for keys
    that decide the item), then run each listed key's check on a freshly loaded page."""
    address = url if callable(url) else (lambda: url)
    page.goto(address())
    listed = listed_keys(page)
    unknown = set(listed) - set(checks)
    assert not unknown, f"{address()} lists keys this test does not know: {unknown}"
    for key in listed:
        open_for_keys(page, address())
        checks[key]()
    return listed


def pending(world, n: int = 0) -> ProposedAction:
    """The n-th item still pending (oldest first)."""
    ids = [a.pk for a in world["items"]]
    return ProposedAction.objects.filter(pk__in=ids, status=Status.PENDING_REVIEW).order_by("created_at", "id")[n]


def focused(page: Page, key: str, field: str) -> None:
    keys(page, key)
    expect(page.locator(f'[data-shortcut="{field}"]')).to_be_focused()


def _help(page: Page) -> None:
    keys(page, "?")
    expect(page.locator("#shortcuts")).to_be_visible()


def _escape(page: Page) -> None:
    keys(page, "?", "Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()


def test_every_key_of_the_queue_help_works_on_the_queue(live_server, page: Page, world):
    base = live_server.url
    sign_in(page, base, "rita", PASSWORD)
    rows = page.locator("[data-queue-rows] tr[data-id]")

    def j():
        keys(page, "j")
        expect(rows.nth(0)).to_have_class(re.compile("selected"))
        expect(rows.nth(0).locator("a")).to_be_focused()  # the selection is announced: focus moves
        keys(page, "j")
        expect(rows.nth(1).locator("a")).to_be_focused()

    def k():
        keys(page, "j", "j", "k")
        expect(rows.nth(0).locator("a")).to_be_focused()

    def enter():
        first = pending(world)
        keys(page, "j", "Enter")
        expect(page).to_have_url(re.compile(rf"/actions/{first.pk}/$"))

    def ready_to(key: str, field: str):
        def check():
            keys(page, "j", key)
            expect(page).to_have_url(re.compile(r"/actions/\d+/#"))
            expect(page.locator(f'[data-shortcut="{field}"]')).to_be_focused()

        return check

    def n():
        keys(page, "n")
        expect(page).to_have_url(re.compile(r"/actions/\d+/$"))
        shown = int(page.locator("[data-action-detail]").get_attribute("data-action-id"))
        assert ProposedAction.objects.get(pk=shown).claimed_by_id == world["rita"].user_id

    listed = check_every_listed_key(
        page,
        base + "/queue/",
        {
            "j": j,
            "k": k,
            "Enter": enter,
            "n": n,
            "a": ready_to("a", "approve"),
            "r": ready_to("r", "reject"),
            "e": ready_to("e", "escalate"),
            "Escape": lambda: _escape(page),
            "?": lambda: _help(page),
        },
    )
    assert set(listed) == {"j", "k", "Enter", "n", "a", "r", "e", "Escape", "?"}


def test_every_key_of_the_item_help_works_on_an_item_page(live_server, page: Page, world):
    base = live_server.url
    sign_in(page, base, "rita", PASSWORD)

    def url() -> str:
        return f"{base}/actions/{pending(world, 5).pk}/"

    def j():
        keys(page, "j")
        expect(page).to_have_url(re.compile(rf"/actions/{pending(world, 6).pk}/$"))

    def k():
        keys(page, "k")
        expect(page).to_have_url(re.compile(rf"/actions/{pending(world, 4).pk}/$"))

    def n():
        for key in ("n", "Enter"):  # listed together: both review next
            open_for_keys(page, url())
            keys(page, key)
            expect(page).to_have_url(re.compile(r"/actions/\d+/$"))
            shown = int(page.locator("[data-action-detail]").get_attribute("data-action-id"))
            assert ProposedAction.objects.get(pk=shown).claimed_by_id == world["rita"].user_id

    def a():
        shown = int(page.locator("[data-action-detail]").get_attribute("data-action-id"))
        keys(page, "a")
        expect(page.get_by_role("status").first).to_contain_text(f"Approved: #{shown}")
        assert ProposedAction.objects.get(pk=shown).status == Status.APPROVED

    def p():
        keys(page, "p")
        editor = page.locator("#payload-editor")
        expect(editor).to_be_visible()
        expect(editor).to_be_focused()

    def escape():
        keys(page, "r")
        expect(page.locator('[data-shortcut="reject"]')).to_be_focused()
        page.keyboard.press("Escape")
        expect(page.locator('[data-shortcut="reject"]')).not_to_be_focused()
        _escape(page)

    listed = check_every_listed_key(
        page,
        url,
        {
            "j": j,
            "k": k,
            "n": n,
            "a": a,
            "r": lambda: focused(page, "r", "reject"),
            "e": lambda: focused(page, "e", "escalate"),
            "p": p,
            "Escape": escape,
            "?": lambda: _help(page),
        },
    )
    assert set(listed) == {"j", "k", "n", "a", "r", "e", "p", "Escape", "?"}


def test_every_listed_key_works_on_senior_and_audit_items(live_server, page: Page, world):
    deployment = world["deployment"]

    def escalated() -> ProposedAction:
        """A senior item still pending (a new one once the last was decided)."""
        return ProposedAction.objects.filter(status=Status.PENDING_SENIOR).first() or ProposedActionFactory(
            deployment=deployment, status=Status.PENDING_SENIOR, reason="odd amount"
        )

    def sample() -> ProposedAction:
        """An audit sample without a verdict (a new one once the last has one)."""
        return ProposedAction.objects.filter(audit_sample=True, audit_verdict="").first() or ProposedActionFactory(
            deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True, payload={"x": 1}
        )

    base = live_server.url
    sign_in(page, base, "sam", PASSWORD)
    expect(page).to_have_url(re.compile(r"/queue/senior/$"))  # seniors land on their queue

    def no_escalation():
        keys(page, "e")  # there is no one above: the page says so, focus moves to the words
        note = page.locator("[data-no-escalate]")
        expect(note).to_be_focused()
        expect(note).to_contain_text("nobody to escalate to")

    def senior_approve():
        shown = int(page.locator("[data-action-detail]").get_attribute("data-action-id"))
        keys(page, "a")
        expect(page.get_by_role("status").first).to_contain_text(f"Approved: #{shown}")
        assert ProposedAction.objects.get(pk=shown).status == Status.APPROVED

    def review_next():
        for key in ("n", "Enter"):
            open_for_keys(page, f"{base}/actions/{sample().pk}/")
            keys(page, key)
            expect(page).to_have_url(re.compile(r"/actions/\d+/$|/queue/"))

    listed = check_every_listed_key(
        page,
        lambda: f"{base}/actions/{escalated().pk}/",
        {
            "a": senior_approve,
            "r": lambda: focused(page, "r", "reject"),
            "e": no_escalation,
            "p": lambda: (keys(page, "p"), expect(page.locator("#payload-editor")).to_be_focused()),
            "n": review_next,
            "Escape": lambda: _escape(page),
            "?": lambda: _help(page),
        },
    )
    assert "e" in listed and "a" in listed

    def correct():
        shown = int(page.locator("[data-action-detail]").get_attribute("data-action-id"))
        keys(page, "a")
        expect(page.get_by_role("status").first).to_contain_text(f"“correct” recorded: #{shown}")
        assert ProposedAction.objects.get(pk=shown).audit_verdict == "correct"

    listed = check_every_listed_key(
        page,
        lambda: f"{base}/actions/{sample().pk}/",
        {
            "a": correct,
            "r": lambda: focused(page, "r", "reject"),
            "n": review_next,
            "Escape": lambda: _escape(page),
            "?": lambda: _help(page),
        },
    )
    assert {"a", "r"} <= set(listed) and "e" not in listed and "p" not in listed


def test_edit_by_keyboard_error_at_the_field_confirm_focused_keys_in_order(live_server, page: Page, world):
    base = live_server.url
    item = world["items"][0]
    sign_in(page, base, "rita", PASSWORD)
    open_for_keys(page, f"{base}/actions/{item.pk}/")
    shown = page.locator("#payload > table > tbody > tr > th, #payload > table > tr > th").all_inner_texts()
    keys(page, "p")
    editor = page.locator("#payload-editor")
    expect(editor).to_be_focused()
    # The editor keeps the payload's key order: the one the page shows above it.
    assert list(json.loads(editor.input_value())) == shown
    # Broken JSON: the error is placed at the field, the field says it is invalid, focus is on it.
    page.keyboard.press("Control+A")
    page.keyboard.type('{"zz": 1, "amount_cents": }')
    page.keyboard.press("Tab")  # the note
    page.keyboard.press("Tab")  # "Review changes"
    page.keyboard.press("Enter")
    error = page.locator("#payload-error")
    expect(error).to_contain_text("not valid JSON")
    expect(editor).to_be_focused()
    expect(editor).to_have_attribute("aria-invalid", "true")
    assert editor.get_attribute("aria-describedby") == "payload-error"
    # Fixed: the diff page comes with the focus on "Confirm"; Enter approves.
    page.keyboard.press("Control+A")
    page.keyboard.type('{"zz": 1, "amount_cents": 150}')
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#payload-diff")).to_contain_text("amount_cents")
    expect(page.get_by_role("button", name="Confirm and approve")).to_be_focused()
    # The title follows the swap (set by the page's script after it): wait for it.
    expect(page).to_have_title(re.compile(rf"^Confirm edits · #{item.pk}"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text(f"with your edits: #{item.pk}")
    stored = ProposedAction.objects.get(pk=item.pk)
    assert stored.status == Status.APPROVED and stored.final_payload == {"zz": 1, "amount_cents": 150}


def test_after_each_swap_the_title_is_true_and_focus_is_on_the_new_heading(live_server, page: Page, world):
    base = live_server.url
    sign_in(page, base, "rita", PASSWORD)
    page.locator("h1").click()
    keys(page, "n")
    for _ in range(3):
        expect(page).to_have_url(re.compile(r"/actions/\d+/$"))
        shown = page.locator("[data-action-detail]").get_attribute("data-action-id")
        heading = page.locator("[data-action-detail] h1")
        expect(heading).to_contain_text(f"#{shown}")
        keys(page, "a")
        expect(page.locator("[data-action-detail]")).not_to_have_attribute("data-action-id", shown)
        now = page.locator("[data-action-detail]").get_attribute("data-action-id")
        item = ProposedAction.objects.get(pk=int(now))
        expect(page).to_have_title(f"#{item.pk} {item.action_type} · Trustladder")
        expect(page.locator("[data-action-detail] h1")).to_be_focused()
        expect(page).to_have_url(re.compile(rf"/actions/{item.pk}/$"))
