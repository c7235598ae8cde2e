"""An admin's day without Django admin, in a real browser: the gate reads well and links its
docs, approving shows what changes, demotion picks a known type one stage down, the audit log
finds by substring and links its objects, rotate asks first, adjudications keep the place."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import Page, expect

from deliveries.models import Delivery
from deployments.models import AuditEvent, Deployment
from reviews.models import ProposedAction
from tests.browser.support import sign_in
from tests.deliveries.factories import DeliveryFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(db):
    call_command("load_demo", "--days", "3")


def test_the_gate_reads_well_and_approving_says_what_changes(live_server, page: Page, demo):
    base = live_server.url
    sign_in(page, base, "admin2", "admin2-demo-pw")
    expect(page).to_have_url(re.compile(r"/deployments/$"))  # admins land on the deployments
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)  # no Django admin rights
    page.goto(base + "/deployments/refunds/gate/")
    evaluation = page.locator("#evaluation")
    text = evaluation.inner_text()
    assert not re.search(r"\de-\d", text), text  # no e-notation anywhere
    assert re.search(r"\d+(\.\d+)?%", text)  # rates as percentages
    # The window starts at the day's midnight (the counters are daily), said as such.
    expect(page.locator("#evidence-window")).to_contain_text("00:00 UTC: the whole day the stage began")
    # Times in words, the exact ISO time on hover.
    stamp = page.locator("#request time").first
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp.get_attribute("title"))
    assert "ago" in stamp.inner_text()
    # What approving changes: which routes start auto-executing, with the counterfactual numbers.
    effect = page.locator("#promotion-effect")
    expect(effect).to_contain_text("Starts auto-executing")
    expect(effect).to_contain_text("risk below 30%")
    expect(effect).to_contain_text("would have auto-executed")
    # The docs are a link, and the page behind it is the gate's documentation.
    page.get_by_role("link", name="how the gate decides").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("gate", ignore_case=True)


def test_demotion_by_type_picks_a_known_type_one_stage_down(live_server, page: Page, demo):
    base = live_server.url
    sign_in(page, base, "admin", "admin-demo-pw")
    page.goto(base + "/deployments/invoice-matching/")
    form = page.locator('form[action$="/demote"]')
    stage = form.get_by_label("Demote to")
    expect(stage).to_have_value("approval")  # one stage down from supervised, not the harshest
    scope = form.get_by_label("Scope")
    options = scope.locator("option").all_inner_texts()
    assert options == ["the whole deployment", "only invoice.flag", "only invoice.match"]
    scope.select_option("invoice.flag")
    form.get_by_label("Reason").fill("flags look off since v3.2")
    form.get_by_role("button", name="Demote now").click()
    expect(page.locator(".msg-success")).to_contain_text("Demoted to approval for invoice.flag")
    deployment = Deployment.objects.get(slug="invoice-matching")
    assert deployment.stage == "supervised" and deployment.stage_caps == {"invoice.flag": "approval"}


def test_audit_log_substring_filters_links_and_words(live_server, page: Page, demo):
    base = live_server.url
    sign_in(page, base, "admin", "admin-demo-pw")
    page.goto(base + "/audit/")
    page.get_by_label("Verb contains").fill("approved")
    page.get_by_label("Actor contains").fill("revie")  # part of "reviewer"
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.audit tbody tr")
    expect(rows.first).to_contain_text("Action approved")
    assert all("reviewer" in who for who in page.locator("table.audit tbody tr td:nth-child(2)").all_inner_texts())
    link = rows.first.get_by_role("link", name=re.compile(r"^action #\d+$"))
    action_id = int(link.inner_text().split("#")[1])
    link.click()
    expect(page).to_have_url(re.compile(rf"/actions/{action_id}/$"))
    # The action's history lists each decision once, in words, with who.
    history = page.locator("table.history").inner_text()
    assert history.count("Approved (") + history.count("Approved with edits (") == 1
    assert "reviews.action.approved" not in history and "reviewer" in history
    # Automatic and agent actors in words too.
    page.goto(base + "/audit/?actor=system")
    expect(page.locator("table.audit tbody tr").first).to_contain_text("Trustladder (automatic)")


def test_rotate_asks_first_and_delivery_status_is_the_same_everywhere(live_server, page: Page, demo):
    refunds = Deployment.objects.get(slug="refunds")
    delivery = DeliveryFactory(deployment=refunds, attempts=2, last_status_code=503)
    secret = refunds.webhook_secret
    base = live_server.url
    sign_in(page, base, "admin", "admin-demo-pw")
    page.goto(base + "/deliveries/")
    rotate = page.get_by_role("button", name="Rotate the signing secret of refunds")
    page.once("dialog", lambda dialog: dialog.dismiss())
    rotate.click()
    page.wait_for_timeout(300)
    assert Deployment.objects.get(pk=refunds.pk).webhook_secret == secret  # declined: nothing rotated
    page.once("dialog", lambda dialog: dialog.accept())
    rotate.click()
    expect(page.locator(".msg-success")).to_contain_text("new signing secret")
    assert Deployment.objects.get(pk=refunds.pk).webhook_secret != secret
    row = page.locator("tr", has=page.get_by_role("link", name=re.compile("action #")))
    expect(row.first.locator(".badge")).to_have_text("retrying")
    page.goto(f"{base}/deliveries/{delivery.pk}/")
    expect(page.locator(".card .badge").first).to_have_text("retrying")
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"


def test_an_adjudication_keeps_the_readers_place(live_server, page: Page, demo):
    base = live_server.url
    sign_in(page, base, "admin", "admin-demo-pw")
    page.set_viewport_size({"width": 1000, "height": 600})
    page.goto(base + "/deployments/support-triage/shadow/disagreements/?open=1")
    forms = page.locator("form.adjudicate")
    assert forms.count() >= 5
    target = forms.nth(4)
    target.scroll_into_view_if_needed()
    before = page.evaluate("window.scrollY")
    assert before > 200
    target.get_by_role("button").first.click()
    expect(page.locator(".msg-success")).to_be_visible()
    after = page.evaluate("window.scrollY")
    assert abs(after - before) < 80, (before, after)


def test_the_admin_link_shows_only_for_those_who_can_use_django_admin(live_server, page: Page, demo):
    user = get_user_model().objects.get(username="admin")
    user.is_staff = user.is_superuser = True
    user.save()
    sign_in(page, live_server.url, "admin", "admin-demo-pw")
    page.get_by_role("link", name="Admin").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("body")).not_to_contain_text("You don’t have permission")
    assert AuditEvent.objects.exists() and ProposedAction.objects.exists()
