"""Helpers of the browser tests: sign in, press keys once the page listens, run axe-core."""

from collections.abc import Iterator
from contextlib import contextmanager

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page

from deployments.models import Member
from deployments.services import member_create
from tests.factories import DeploymentFactory, ProposedActionFactory

_axe = Axe()
# Every axe-core rule (WCAG 2.0–2.2 A and AA, and its best practices), as they ship.
AXE_OPTIONS = {"resultTypes": ["violations"]}


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def keys(page: Page, *pressed: str) -> None:
    """Press keys once the page's shortcut script is listening."""
    page.locator("body[data-keys-ready]").wait_for(state="attached")
    for key in pressed:
        page.keyboard.press(key)


def axe_violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it is now, one line each (rule, impact, nodes).

    Playwright evaluates the script through the DevTools protocol, which the page's
    Content-Security-Policy does not govern, so axe runs on the page exactly as served."""
    results = _axe.run(page, options=AXE_OPTIONS)
    lines = []
    for v in results.response["violations"]:
        targets = ", ".join(" ".join(n["target"]) for n in v["nodes"][:4])
        lines.append(f"{page.url}: {v['id']} ({v['impact']}) {v['help']} — {targets}")
    return lines


@contextmanager
def two_people(browser: Browser, base: str, names: tuple[str, str], password: str) -> Iterator[list]:
    """Two people signed in at once, each in a browser context of their own: yields
    [(page, context), (page, context)]; the contexts are closed afterwards."""
    contexts: list[BrowserContext] = [browser.new_context(), browser.new_context()]
    try:
        pairs = [(context.new_page(), context) for context in contexts]
        for (page, _), name in zip(pairs, names, strict=True):
            sign_in(page, base, name, password)
        yield pairs
    finally:
        for context in contexts:
            context.close()


def open_for_keys(page: Page, url: str) -> None:
    """Go to `url` and give the page keyboard focus (a click on its heading, not the body)."""
    page.goto(url)
    page.locator("h1").first.click()


def review_team(payloads: list[dict], password: str) -> dict:
    """A deployment in approval with a reviewer (rita), a senior (sam) and one pending item
    per payload, oldest first."""
    deployment = DeploymentFactory(stage="approval", name="Refunds")
    rita = member_create(username="rita", role=Member.Role.REVIEWER, password=password, deployments=[deployment])
    sam = member_create(username="sam", role=Member.Role.SENIOR, password=password, deployments=[deployment])
    items = [ProposedActionFactory(deployment=deployment, payload=payload) for payload in payloads]
    return {"deployment": deployment, "rita": rita, "sam": sam, "items": items}
