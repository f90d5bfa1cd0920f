"""The HTML report the way a person sees it: headless Chromium opens the file written through the
real seal authority, and the test checks the banner, tables and charts render, the hostile cell
stays text, and the console stays clean.

Debian's ``chromium`` and ``chromium-driver`` drive it; Selenium Manager is kept offline, so
nothing is downloaded.
"""

from __future__ import annotations

import base64
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from elspeth.reports import HtmlReport, HtmlReportConfig
from elspeth.sidecar import SidecarClient
from tests.support.browser import WINDOW, chromium, severe_console_entries
from tests.support.reports import EXPERIMENTS, HOSTILE_MESSAGE, make_suite_report

pytestmark = pytest.mark.integration

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_TABLES = {
    "summary": 1,
    "aggregate": len(EXPERIMENTS),
    "results-preview": len(EXPERIMENTS),
    "comparison": len(EXPERIMENTS) - 1,
    "plan": 1,
}
# Two criteria's score distributions, one comparison instance's deltas, cost, latency.
EXPECTED_CHARTS = 5


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    yield from chromium(tmp_path, monkeypatch)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_html_report_renders_in_chromium(
    authority: SidecarClient, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    artifact = HtmlReport(HtmlReportConfig(clearance="OFFICIAL")).write(
        report, tmp_path / "run" / "report__html.html"
    )
    browser.get(artifact.path.as_uri())

    page_height = browser.execute_script("return document.documentElement.scrollHeight")
    assert browser.title.startswith("[OFFICIAL] ")
    top = browser.find_element(By.ID, "classification-top")
    bottom = browser.find_element(By.ID, "classification-bottom")
    for banner in (top, bottom):
        assert banner.is_displayed()
        assert banner.text == "Classification: OFFICIAL · Run status: complete"
        assert banner.get_attribute("role") == "note"
        assert banner.size["width"] >= WINDOW[0] * 0.9
    assert top.location["y"] == 0
    assert bottom.location["y"] + bottom.size["height"] >= page_height - 2
    colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", top)
    assert colour == "rgb(22, 101, 52)"  # OFFICIAL's green, not the page's white

    tables = browser.find_elements(By.CSS_SELECTOR, "table[data-table]")
    assert Counter(table.get_attribute("data-table") for table in tables) == EXPECTED_TABLES
    for table in tables:
        assert table.is_displayed()
        assert table.find_elements(By.CSS_SELECTOR, "tbody tr")
    for preview in browser.find_elements(By.CSS_SELECTOR, "table[data-table=results-preview]"):
        assert len(preview.find_elements(By.CSS_SELECTOR, "tbody tr")) == 20

    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart")
    assert len(charts) == EXPECTED_CHARTS
    for chart in charts:
        image = chart.find_element(By.CSS_SELECTOR, "[role=img]")
        assert image.get_attribute("aria-label")
        assert chart.find_element(By.TAG_NAME, "figcaption").text
        svg = image.find_element(By.TAG_NAME, "svg")
        assert svg.is_displayed()
        assert svg.size["width"] > 300
        assert svg.size["height"] > 100

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is how an open alert shows
    assert browser.execute_script("return document.scripts.length") == 0
    hostile_cells = browser.execute_script(
        "return [...document.querySelectorAll('td')]"
        ".filter(cell => cell.textContent === arguments[0]).length",
        HOSTILE_MESSAGE,
    )
    assert hostile_cells == len(EXPERIMENTS)  # row 0 of every experiment's preview, as text

    assert severe_console_entries(browser) == []

    # Last: a full-page capture lays the page out again at its full height.
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    width, height = _png_size(screenshot.read_bytes())
    assert [width, height] == browser.execute_script(
        "return [window.innerWidth, window.innerHeight]"
    )
    assert screenshot.stat().st_size > 20_000  # a blank page compresses to a few kilobytes
    full_page = base64.b64decode(
        browser.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": WINDOW[0], "height": page_height, "scale": 1},
            },
        )["data"]
    )
    (tmp_path / "report-full.png").write_bytes(full_page)
    assert _png_size(full_page) == (WINDOW[0], page_height)


def test_content_security_policy_blocks_outside_loads(
    authority: SidecarClient, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    # The policy is what turns an accidental external reference into a visible console error.
    artifact = HtmlReport(HtmlReportConfig(clearance="OFFICIAL")).write(
        make_suite_report(authority), tmp_path / "report.html"
    )
    browser.get(artifact.path.as_uri())
    assert severe_console_entries(browser) == []
    browser.execute_script(
        "const image = document.createElement('img');"
        "image.src = 'http://example.invalid/pixel.png';"
        "document.body.appendChild(image);"
    )
    severe = severe_console_entries(browser)
    assert any("Content Security Policy" in entry["message"] for entry in severe), severe
