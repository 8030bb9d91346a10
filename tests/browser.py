"Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright (no browser download)."

import os
import shutil
from contextlib import contextmanager

import pytest

CHROMIUM = os.environ.get('AUTOTRADER_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
FLAGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--disable-dev-shm-usage',
]


def need_chromium():
    "Skip locally (with the reason) when Chromium or Playwright is missing; under CI (.ci/run installs both) fail."
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(missing)
        pytest.skip(missing)


@contextmanager
def browser_page(tmp_path, width=1280, height=900):
    "A fresh Chromium (own user-data-dir under tmp_path) and one page; closed afterwards."
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / 'chromium-profile'),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={'width': width, 'height': height},
        )
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            yield page
        finally:
            ctx.close()
