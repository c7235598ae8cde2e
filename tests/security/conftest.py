import os

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium (RECIPES.md); TRUSTLADDER_CHROMIUM overrides the path."""
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("TRUSTLADDER_CHROMIUM", "/usr/bin/chromium"),
        "args": ["--disable-gpu", "--disable-quic"],
    }
