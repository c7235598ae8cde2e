"""Take the README screenshots of a running demo: python docs/screenshots.py BASE_URL."""

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"
# (file name, user, path) — every page a newcomer should see.
SHOTS = [
    ("queue.png", "reviewer", "/queue/"),
    ("action.png", "reviewer", "FIRST_ACTION"),
    ("deployments.png", "admin", "/deployments/"),
    ("dashboard.png", "admin", "/deployments/invoice-matching/"),
    ("gate.png", "admin2", "/deployments/refunds/gate/"),
    ("shadow.png", "admin", "/deployments/support-triage/shadow/"),
    ("audit.png", "admin", "/audit/"),
]
PASSWORDS = {"reviewer": "reviewer-demo-pw", "admin": "admin-demo-pw", "admin2": "admin2-demo-pw"}


def main(base: str) -> None:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
            args=["--disable-gpu", "--disable-quic"],
        )
        for name, user, path in SHOTS:
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.goto(f"{base}/accounts/login/")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", PASSWORDS[user])
            page.click("button[type=submit]")
            if path == "FIRST_ACTION":
                page.goto(f"{base}/queue/")
                link = page.locator("a[href^='/actions/']").first
                path = link.get_attribute("href") if link.count() else "/queue/"
            response = page.goto(base + path)
            status = response.status if response else 0
            page.screenshot(path=str(OUT / name), full_page=False)
            print(f"{name:<16} {path:<40} HTTP {status}")
            page.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
