"""Debian's Chromium, headless, driven by selenium through Debian's chromedriver: for
the dashboard's tests, and to take the README's screenshots (ORCH_SCREENSHOTS=DIR)."""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What the machine's closed network needs: no background connections (each refused,
# many at a time), no component updates or sync; --no-sandbox, as tests run as root.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,800")
DEADLINE_S = 30.0


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium under selenium, quit afterwards (it and its driver are ours,
    ended by selenium through their PIDs)."""
    with tempfile.TemporaryDirectory(prefix="orch-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def until(condition: Callable[[], Any], timeout: float = DEADLINE_S, what: str = "") -> Any:
    """Poll CONDITION (of the page) until it is truthy, and return it; fail after TIMEOUT.
    An element not there yet, or replaced while read, counts as not yet."""
    def checked() -> Any:
        try:
            return condition()
        except Exception:
            return None

    return wait_for(checked, timeout, what)


def table_row(driver: Any, name: str) -> Any:
    """The dashboard's row of the session NAME, None if it lists none."""
    rows = driver.find_elements("css selector", "#sessions tr")
    return next((row for row in rows if row.find_element("tag name", "td").text == name),
                None)


def screenshot_dir() -> Path | None:
    """Where the README's screenshots go, if this run is to take them."""
    where = os.environ.get("ORCH_SCREENSHOTS")
    return Path(where) if where else None


def terminal_png(text: str, path: Path, columns: int, rows: int) -> None:
    """TEXT, a terminal's screen, drawn as a PNG of a terminal window at PATH."""
    page = ("<!doctype html><meta charset=utf-8><body style='margin:0;background:#1e1e1e'>"
            "<pre style='margin:0;padding:12px;color:#e5e5e5;font:14px/1.3 "
            "DejaVu Sans Mono,monospace'>" + html.escape(text) + "</pre>")
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "screen.html"
        source.write_text(page)
        with chromium() as driver:
            driver.set_window_size(columns * 8 + 40, rows * 19 + 120)
            driver.get(source.as_uri())
            driver.find_element("tag name", "pre").screenshot(str(path))
