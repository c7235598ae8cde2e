"""The recompute progress bar updates live in a real browser (htmx polling, no reload)."""

import os
import shutil

import pytest

from deployments.models import Member
from reviews.shadow.models import ShadowRecompute
from tests.factories import MemberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("TRUSTLADDER_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(autouse=True)
def _needs_chromium():
    if not shutil.which(CHROMIUM) and os.environ.get("TRUSTLADDER_REQUIRE_SERVICES") != "1":
        pytest.skip(f"needs chromium at {CHROMIUM}")


def test_progress_bar_follows_a_running_recompute_live(live_server, page, deployment):
    from playwright.sync_api import expect

    admin = MemberFactory(role=Member.Role.ADMIN)
    recompute = ShadowRecompute.objects.create(deployment=deployment, total=4, processed=1)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", admin.user.username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/deployments/{deployment.slug}/shadow/rules/")
    box = page.locator("#recompute-progress")
    expect(box).to_contain_text("Recompute running")
    expect(box).to_contain_text("25%")
    recompute.processed = 3
    recompute.save()
    expect(box).to_contain_text("75%", timeout=10_000)  # polled by htmx, the page is not reloaded
    recompute.processed, recompute.status = 4, ShadowRecompute.Status.DONE
    recompute.save()
    expect(box).to_contain_text("Recompute finished", timeout=10_000)
    assert page.locator("progress").get_attribute("value") == "100"
    assert box.get_attribute("hx-trigger") is None  # polling stopped
