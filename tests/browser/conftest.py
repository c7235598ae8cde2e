"""Browser tests: Playwright (sync API) driving Debian's chromium against `live_server`.

The browser is /usr/bin/chromium unless TRUSTLADDER_CHROMIUM names another. Without it the
tests skip (a failure under TRUSTLADDER_REQUIRE_SERVICES=1). A failing test leaves a
screenshot and the page's HTML under test-results/.
"""

import os
import re
from pathlib import Path

import pytest

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


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request: pytest.FixtureRequest, page):
    """Depends on `page`, so it is torn down (and shoots) before the page closes."""
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
