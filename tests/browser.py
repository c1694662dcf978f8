"""Driving the pages in a real browser: Debian's Chromium under Playwright, axe-core for
accessibility, and screenshots at a desktop and a phone width for CI's artefacts.

Playwright never downloads a browser here: it launches the system's ``chromium``
(``CHROMIUM`` names another). axe-core comes from the project's npm packages.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).parent / "artifacts"
WIDTHS = (1280, 375)
# Flags for a headless Chromium on a machine with no network beyond localhost.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "No Chromium to drive: install Debian's chromium (.ci/run does), or set CHROMIUM."
        )
    if not AXE.exists():
        pytest.fail("axe-core is missing: run 'make install' (npm ci) first.")
    return found


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def live_server(app: Flask, port: int = 0) -> Iterator[str]:
    """The app served over HTTP on ``port`` (any free one by default), in a thread."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def new_page(browser: Browser) -> Page:
    # The pages' CSP forbids inline scripts; the test lets itself inject axe-core.
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900}, bypass_csp=True)
    context.set_default_timeout(15_000)
    return context.new_page()


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical WCAG 2.1 A/AA violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def check(page: Page, name: str) -> None:
    """Screenshots at each width, then no serious accessibility problem at either."""
    ARTIFACTS.mkdir(exist_ok=True)
    problems: dict[int, list[dict[str, Any]]] = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        found = serious_violations(page)
        if found:
            problems[width] = found
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    assert not problems, f"{name}: axe-core found {problems}"


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element is focused: proves it is reachable by keyboard alone."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"{selector} cannot be reached with the Tab key")


def type_into(page: Page, selector: str, text: str) -> None:
    tab_to(page, selector)
    page.keyboard.type(text)


def ref_in(url: str) -> str:
    found = re.search(r"INC-\d+", url)
    assert found, url
    return found.group(0)
