"""The promotion workflow and the kill switch in a real browser (Playwright + chromium)."""

import pytest
from playwright.sync_api import Page, expect

from deployments.models import Deployment, Member
from deployments.services import member_create
from tests.deployments.test_gate import approval_evidence, make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"{username}-browser-pw")
    page.click("button[type=submit]")


def test_request_by_one_admin_approve_by_another_then_pause(live_server, page: Page):
    d = make("approval")
    approval_evidence(d)
    for name in ("alice", "bob"):
        member_create(username=name, role=Member.Role.ADMIN, password=f"{name}-browser-pw")
    base = live_server.url
    gate = f"{base}/deployments/{d.slug}/gate/"

    sign_in(page, base, "alice")
    page.goto(gate)
    expect(page.locator(".outcome")).to_have_text("pass")
    page.fill("#request input[name=reason]", "two weeks clean")
    page.click("text=Request promotion to supervised")
    expect(page.locator(".msg-success")).to_contain_text("another admin must approve")
    expect(page.locator("#request")).to_contain_text("another admin must approve or reject your request")
    page.click("button.link")  # sign out

    sign_in(page, base, "bob")
    page.goto(gate)
    page.fill("#request input[name=reason]", "agreed")
    page.click("#request button[value=approve]")
    expect(page.locator(".msg-success")).to_contain_text("now at supervised")
    assert Deployment.objects.get(pk=d.pk).stage == "supervised"

    page.goto(f"{base}/deployments/{d.slug}/")
    expect(page.locator("#timeline")).to_contain_text("deployments.stage.promoted")
    page.fill('#admin-actions form[action$="/pause"] input[name=reason]', "incident 7")
    page.click("text=Pause (kill switch)")
    expect(page.locator(".msg-success")).to_contain_text("Paused")
    assert Deployment.objects.get(pk=d.pk).paused
