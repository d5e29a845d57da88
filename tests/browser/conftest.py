"""Headless Chromium (Debian's chromium and chromium-driver) driving the console.

The console runs in gunicorn on static files collected as deployed
(tests/browser/settings.py), beside a real Celery worker on the suite's broker
(tests/integration Stack). No browser is ever downloaded: without Debian's
packages the tests skip locally, and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.conftest import stack  # noqa: F401  (the fixture)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
BROWSER_SETTINGS = "tests.browser.settings"


def browser_binaries() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = (
        "the browser tests need Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver; .ci/run installs them)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def collect_static(root: Path) -> None:
    """`collectstatic` with the deployed storage, as `make run` and the Dockerfile do."""
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": BROWSER_SETTINGS, "STATIC_ROOT": str(root)},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def console(stack, tmp_path):  # noqa: F811
    """The console in gunicorn on collected static files, and a worker; returns the base URL."""
    static_root = tmp_path / "static"
    collect_static(static_root)
    base = stack.web(DJANGO_SETTINGS_MODULE=BROWSER_SETTINGS, STATIC_ROOT=str(static_root))
    stack.worker()
    return base
