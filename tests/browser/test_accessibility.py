"""WCAG 2.2 AA in a real browser: axe-core (axe-playwright-python) finds no violation on any
page, under the pages' own Content-Security-Policy; skip link, names, dialogs, narrow screens."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import Browser, Page, expect

from deliveries.models import Delivery
from deployments.models import Deployment, Member
from deployments.services import member_create
from reviews.models import ProposedAction
from tests.browser.support import axe_violations, keys, sign_in
from tests.deliveries.factories import DeliveryFactory
from tests.factories import ProposedActionFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(db):
    """Three days of the demo's history: every page has something to show."""
    call_command("load_demo", "--days", "3")
    refunds = Deployment.objects.get(slug="refunds")
    pending = ProposedAction.objects.filter(deployment=refunds, status="pending_review").order_by("pk")
    DeliveryFactory(deployment=refunds, object_id=str(pending[0].pk), attempts=2)
    ProposedActionFactory(deployment=refunds, status="pending_senior", route="senior", risk_score=0.82)
    return {"pending": pending[0], "other": pending[1]}


def _visit_all(page: Page, base: str, paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        found += axe_violations(page)
    return found


def test_no_axe_violations_on_any_page_for_any_role(live_server, page: Page, demo):
    base = live_server.url
    action = demo["pending"]
    audited = ProposedAction.objects.filter(audit_sample=True, audit_verdict="").first()
    senior_item = ProposedAction.objects.filter(status="pending_senior").first()
    delivery = Delivery.objects.first()
    member_create(username="nobody", role=Member.Role.REVIEWER, password="nobody-demo-pw")

    page.goto(base + "/accounts/login/")
    found = axe_violations(page)

    sign_in(page, base, "admin", "admin-demo-pw")
    found += _visit_all(
        page,
        base,
        [
            "/deployments/",
            "/deployments/refunds/",
            "/deployments/refunds/gate/",
            "/deployments/invoice-matching/",
            "/deployments/invoice-matching/gate/",
            "/deployments/password-resets/gate/",
            "/audit/",
            "/audit/?verb=approved&actor=admin",
            "/deliveries/",
            f"/deliveries/{delivery.pk}/",
            "/deployments/support-triage/shadow/",
            "/deployments/support-triage/shadow/disagreements/",
            "/deployments/support-triage/shadow/rules/",
            "/docs/gate/",
            "/no-such-page/",
        ],
    )
    # The deployment page with its chart tables open, and the gate's frozen evidence open.
    page.goto(base + "/deployments/refunds/")
    for summary in page.locator("details.chart-data summary").all():
        summary.click()
    found += axe_violations(page)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, base, "reviewer", "reviewer-demo-pw")
    found += _visit_all(page, base, ["/queue/", f"/actions/{action.pk}/", f"/actions/{senior_item.pk}/", "/audit/"])
    # The item page with the help open, the payload editor open and a JSON error at the field.
    page.goto(f"{base}/actions/{action.pk}/")
    page.locator("h1").click()
    keys(page, "?")
    expect(page.locator("#shortcuts")).to_be_visible()
    found += axe_violations(page)
    keys(page, "Escape", "p")
    page.locator("#payload-editor").fill('{"amount_cents": ')
    page.get_by_role("button", name="Review changes").click()
    expect(page.locator("#payload-error")).to_be_visible()
    found += axe_violations(page)
    page.locator("#payload-editor").fill('{"amount_cents": 1, "order": "X"}')
    page.get_by_role("button", name="Review changes").click()
    expect(page.locator("#payload-diff")).to_be_visible()
    found += axe_violations(page)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, base, "senior", "senior-demo-pw")
    found += _visit_all(page, base, ["/queue/senior/", "/queue/audit/", f"/actions/{audited.pk}/"])

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, base, "nobody", "nobody-demo-pw")
    found += _visit_all(page, base, ["/deployments/refunds/"])  # 404: not assigned
    assert not found, "\n".join(found)


def test_narrow_screens_360px_collapse_the_navigation_and_keep_tables_in_their_box(live_server, browser: Browser, demo):
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    base = live_server.url
    sign_in(page, base, "admin", "admin-demo-pw")
    menu = page.get_by_role("button", name="Menu")
    for path in ["/queue/", "/deployments/", "/deployments/refunds/gate/", "/audit/", "/deliveries/"]:
        page.goto(base + path)
        # Nothing wider than the screen: the page itself never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
        expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
        expect(menu).to_have_attribute("aria-expanded", "false")
        # Tables keep their semantics and scroll inside their own box.
        assert page.get_by_role("table").count() >= 1, path
    page.goto(base + "/audit/")
    table = page.locator("table.audit")
    assert table.evaluate("t => t.scrollWidth > t.clientWidth && getComputedStyle(t).overflowX === 'auto'")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link").first).to_be_focused()  # the focus goes into the opened menu
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert not axe_violations(page)
    nav.get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(re.compile(r"/audit/$"))
    context.close()


def test_skip_link_names_with_counts_and_the_help_dialog_keeps_tab(live_server, page: Page, demo):
    base = live_server.url
    sign_in(page, base, "reviewer", "reviewer-demo-pw")
    waiting = ProposedAction.objects.filter(status="pending_review").count()
    # The count is part of the link's accessible name.
    expect(page.get_by_role("link", name=f"Queue {waiting} waiting")).to_be_visible()
    # The first Tab reaches the skip link; following it puts the focus on the main content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # The help dialog keeps Tab (and Shift+Tab) inside itself.
    page.locator("h1").click()
    keys(page, "?")
    dialog = page.locator("#shortcuts")
    expect(dialog).to_be_visible()
    for _ in range(4):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('shortcuts').contains(document.activeElement)")
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.getElementById('shortcuts').contains(document.activeElement)")
    keys(page, "Escape")
    expect(dialog).to_be_hidden()


def test_error_pages_are_styled_pages(live_server, page: Page, demo):
    base = live_server.url
    sign_in(page, base, "reviewer", "reviewer-demo-pw")
    response = page.goto(base + "/audit/")  # seniors and admins only
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("You can't open this page")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    response = page.goto(base + "/actions/999999999/")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")
    expect(page.get_by_role("link", name="Go to your start page")).to_be_visible()
