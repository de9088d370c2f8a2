"""Debian's chromium under Playwright, headless, for the browser tests
(tests/e2e/test_*_browser.py): import ``browser_page`` as a fixture. Skipped
where chromium is not installed, failed in CI, where `make test` installs it.
(Not tests/e2e/conftest.py: the suite imports `from conftest import …`, which
a second conftest module would shadow.)"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A fresh page, 1440 x 900, in a browser closed after the test."""
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing; `make test` installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser.new_page(viewport={"width": 1440, "height": 900})
        browser.close()
