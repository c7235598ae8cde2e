"""Browser tests: Playwright (sync API) driving Debian's chromium against `live_server`.

The browser is /usr/bin/chromium unless TRUSTLADDER_CHROMIUM names another. Without it the
tests skip (a failure under TRUSTLADDER_REQUIRE_SERVICES=1). A failing test leaves a
screenshot and the page's HTML under test-results/.
"""

import os
import re
import threading
import time
from pathlib import Path

import pytest
from django.core.signals import request_finished, request_started

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = os.environ.get("TRUSTLADDER_CHROMIUM", "/usr/bin/chromium")
RESULTS = Path(__file__).resolve().parents[2] / "test-results"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        message = f"needs chromium at {CHROMIUM} (apt-get install -y chromium, or set TRUSTLADDER_CHROMIUM)"
        if REQUIRE_SERVICES:
            pytest.fail(message + " — TRUSTLADDER_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [*browser_type_launch_args.get("args", []), "--disable-gpu", "--disable-quic"],
    }


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class _InFlight:
    """Requests the live server has started and not yet finished (its thread sends the signals)."""

    def __init__(self) -> None:
        self.count = 0
        self.seen = 0
        self._lock = threading.Lock()

    def started(self, **kwargs) -> None:
        with self._lock:
            self.count += 1
            self.seen += 1

    def finished(self, **kwargs) -> None:
        with self._lock:
            self.count -= 1


@pytest.fixture(autouse=True)
def _server_quiet(page, live_server, transactional_db):
    """Leave the page, then wait for the requests its leaving sends before the database is flushed.

    The action page releases its claim with a beacon on `pagehide`. A test that ends on that
    page would otherwise have its beacon arrive while pytest-django flushes the tables (the
    flush fails on the request's lock and the next test sees this one's rows). This fixture is
    set up after `page`, `live_server` and `transactional_db`, so it is torn down before them."""
    flight = _InFlight()
    request_started.connect(flight.started, dispatch_uid="browser-in-flight-start")
    request_finished.connect(flight.finished, dispatch_uid="browser-in-flight-finish")
    try:
        yield
        before = flight.seen
        try:
            releases = page.locator("[data-action-detail][data-release-url]").count() > 0
            page.goto("about:blank")
        except Exception as exc:  # a crashed page sends nothing more
            print(f"could not leave the page: {exc}")
            releases = False
        start = time.monotonic()
        # The beacon leaves the browser after the navigation; give it a moment to arrive.
        while releases and flight.seen == before and time.monotonic() < start + 1:
            time.sleep(0.02)
        while flight.count > 0 and time.monotonic() < start + 5:
            time.sleep(0.02)
    finally:
        request_started.disconnect(dispatch_uid="browser-in-flight-start")
        request_finished.disconnect(dispatch_uid="browser-in-flight-finish")


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request: pytest.FixtureRequest, page, _server_quiet):
    """Depends on `page`, so it is torn down (and shoots) before the page closes, and before
    `_server_quiet` leaves the page."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    RESULTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
    try:
        page.screenshot(path=str(RESULTS / f"{name}.png"), full_page=True)
        (RESULTS / f"{name}.html").write_text(page.content())
    except Exception as exc:  # the page may be gone; the test has failed anyway
        print(f"could not save a screenshot: {exc}")
