"""Headless Chromium for the dashboard's browser tests (Selenium + the distribution's driver).

``.ci/run`` installs ``chromium`` and ``chromium-driver``; where they are absent the tests
skip and say so.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def chromium_paths() -> tuple[str, str]:
    """The browser and its driver, or skip the test naming what to install."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "headless Chromium is not installed (apt-get install chromium chromium-driver; "
            ".ci/run installs it)"
        )
    return browser, driver


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A headless Chromium WebDriver, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, what: str, cond: Callable[[Any], Any], timeout_s: float) -> Any:
    """Poll ``cond(driver)`` until truthy; fail naming ``what`` after ``timeout_s``."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver,
        timeout_s,
        poll_frequency=0.1,
        ignored_exceptions=(StaleElementReferenceException,),  # the page redraws its SVG
    )
    try:
        return wait.until(cond)
    except TimeoutException as exc:
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}") from exc
