"""The viewer the way a reviewer uses it, in real headless Chromium against the real server:
open the sample run, switch to different-only, filter by an expression, search a word, open a
row's drill-down, click a histogram bar, compare two runs; a screenshot of each step, the banner
on every page, a hostile answer shown as text, and no console errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.browser import chromium, severe_console_entries
from tests.view.conftest import HOSTILE_REPLY, SAMPLE_ROWS, serving

pytestmark = pytest.mark.integration

TIMEOUT = 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    yield from chromium(tmp_path, monkeypatch)


class Page:
    """The viewer's page, each step screenshotted into ``shots``."""

    def __init__(self, driver: webdriver.Chrome, shots: Path) -> None:
        self.driver = driver
        self.shots = shots
        self.taken: list[Path] = []
        shots.mkdir(exist_ok=True)

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))

    def wait(self, condition: object) -> None:
        WebDriverWait(self.driver, TIMEOUT).until(condition)  # type: ignore[arg-type]

    def by_id(self, name: str) -> WebElement:
        return self.driver.find_element(By.ID, name)

    def count(self) -> str:
        return self.by_id("count").text

    def rows(self) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, "#table tbody tr")

    def click(self, element: WebElement) -> None:
        """Scroll ``element`` to the middle of the window, as a person would, and click it (at
        an edge, the fixed banners would take the click)."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def apply_and_wait(self) -> None:
        """Submit the filters and wait until the count line says something new."""
        before = self.count()
        self.click(self.by_id("apply"))
        self.wait(lambda d: self.count() != before)

    def shot(self, name: str) -> None:
        path = self.shots / f"{len(self.taken):02d}-{name}.png"
        assert self.driver.get_screenshot_as_png().startswith(PNG_SIGNATURE)
        self.driver.save_screenshot(str(path))
        self.taken.append(path)

    def banners_say(self, text: str) -> None:
        """Both banners say ``text``, on screen and not covered by anything open."""
        for banner in ("banner-top", "banner-bottom"):
            element = self.by_id(banner)
            assert element.is_displayed()
            assert element.text == text
            on_top = self.driver.execute_script(
                "const box = arguments[0].getBoundingClientRect();"
                "return document.elementFromPoint(box.left + box.width * 0.8, box.top + 2)"
                " === arguments[0];",
                element,
            )
            assert on_top, f"{banner} is covered"
            colour = self.driver.execute_script(
                "return getComputedStyle(arguments[0]).backgroundColor", element
            )
            assert colour == "rgb(22, 101, 52)"  # OFFICIAL's green


def _matches(text: str) -> int:
    return int(text.split(" of ", maxsplit=1)[0])


def test_reviewing_the_sample_run_step_by_step(
    sample_run: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    page = Page(browser, tmp_path / "shots")
    with serving([sample_run]) as server:
        page.open(server.url())
        banner = "Classification: OFFICIAL · Run status: complete"
        page.banners_say(banner)
        assert browser.title.startswith("Classification: OFFICIAL")
        assert page.count().startswith(f"{SAMPLE_ROWS} of {SAMPLE_ROWS} rows match")
        headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#table thead th")]
        assert headers[-3:] == ["baseline (baseline)", "terse_prompt", "second_opinion"]
        page.shot("opened")

        Select(page.by_id("mode")).select_by_value("different")
        page.wait(lambda d: "#" in d.current_url and "mode=different" in d.current_url)
        page.wait(lambda d: _matches(page.count()) <= SAMPLE_ROWS)
        page.shot("different-only")

        page.by_id("expression").send_keys('urgency_score < 3 and region == "North"')
        page.apply_and_wait()
        filtered = _matches(page.count())
        assert 0 < filtered < SAMPLE_ROWS
        regions = {
            row.find_elements(By.CSS_SELECTOR, "td.input")[3].get_attribute("title")
            for row in page.rows()
        }
        assert regions == {"North"}
        page.shot("expression")

        page.click(page.by_id("clear"))
        page.wait(lambda d: _matches(page.count()) == SAMPLE_ROWS)
        page.by_id("search").send_keys("heating")
        page.apply_and_wait()
        found = _matches(page.count())
        assert 0 < found < SAMPLE_ROWS
        for row in page.rows():
            assert "heating" in row.text.lower()
        page.shot("search")

        first = page.rows()[0]
        row_number = int(first.get_attribute("data-row") or "-1")
        page.click(first)
        page.wait(lambda d: page.by_id("detail").is_displayed())
        baseline = browser.find_element(
            By.CSS_SELECTOR, "#detail section[data-experiment=baseline]"
        )
        response = baseline.find_element(By.CSS_SELECTOR, "pre.response").text
        table = pq.read_table(sample_run / "baseline__results__results_parquet.parquet")
        expected = table.filter(pc.equal(table["_row"], row_number))
        assert response == expected["urgency_response"][0].as_py()
        assert "Audit events (2)" in baseline.text  # the row's two criteria, one llm_result each
        page.banners_say(banner)  # the open drill-down leaves the marking visible
        variant = browser.find_element(
            By.CSS_SELECTOR, "#detail section[data-experiment=terse_prompt]"
        )
        page.click(variant.find_element(By.CSS_SELECTOR, "button.diff"))
        page.wait(lambda d: variant.find_element(By.CSS_SELECTOR, "pre.diff-out").is_displayed())
        assert variant.find_elements(By.CSS_SELECTOR, "pre.diff-out span.diff-same")
        page.shot("drill-down")
        page.click(page.by_id("close-detail"))

        page.click(page.by_id("clear"))
        page.wait(lambda d: _matches(page.count()) == SAMPLE_ROWS)
        bar = browser.find_element(
            By.CSS_SELECTOR,
            "figure[data-score=urgency] rect.bar[data-experiment=baseline][data-bin='0']",
        )
        expected_rows = int(
            bar.find_element(By.TAG_NAME, "title")
            .get_attribute("textContent")
            .split(": ")[1]
            .split(" ")[0]
        )
        page.click(bar)
        page.wait(lambda d: _matches(page.count()) == expected_rows)
        assert Select(page.by_id("score")).first_selected_option.text == "urgency"
        page.shot("histogram-click")

        page.click(page.by_id("clear"))
        page.wait(lambda d: _matches(page.count()) == SAMPLE_ROWS)
        point = browser.find_element(
            By.CSS_SELECTOR,
            "figure.scatter[data-score=clarity][data-variant=terse_prompt] circle.point",
        )
        pair_rows = int(point.get_attribute("data-count") or "0")
        x, y = point.get_attribute("data-x"), point.get_attribute("data-y")
        page.click(point)
        page.wait(lambda d: _matches(page.count()) == pair_rows)
        for row in page.rows():
            cells = row.find_elements(By.CSS_SELECTOR, "td.cell .scores")
            assert f"clarity {x}" in cells[0].text
            assert f"clarity {y}" in cells[1].text
        page.shot("scatter-click")

        page.click(page.by_id("tab-summary"))
        page.wait(lambda d: page.by_id("summary").is_displayed())
        assert page.by_id("summary").find_element(By.CSS_SELECTOR, ".run-status").text == "complete"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#statistics tbody tr")) == 3
        forests = browser.find_elements(By.CSS_SELECTOR, "#forest figure.forest")
        assert [f.get_attribute("data-variant") for f in forests] == [
            "second_opinion",
            "terse_prompt",
        ]
        for figure in forests:
            assert len(figure.find_elements(By.CSS_SELECTOR, "circle")) == 2  # one per criterion
            verdicts = [li.text for li in figure.find_elements(By.CSS_SELECTOR, "li.verdict")]
            assert [v.split(":")[0] for v in verdicts] == ["urgency", "clarity"]
        page.banners_say(banner)
        page.shot("summary")

        assert severe_console_entries(browser) == []
    assert len(page.taken) == 8


def test_two_runs_side_by_side(
    sample_run: Path, second_sample_run: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    page = Page(browser, tmp_path / "shots")
    with serving([sample_run, second_sample_run]) as server:
        page.open(server.url())
        headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#table thead th")]
        assert "baseline (baseline)" in headers
        assert "B:baseline" in headers
        Select(page.by_id("mode")).select_by_value("different")
        page.wait(lambda d: "mode=different" in d.current_url)
        page.wait(lambda d: _matches(page.count()) > 0)
        page.shot("two-runs")
        assert severe_console_entries(browser) == []


def test_a_hostile_answer_is_shown_as_text(
    graded_hostile_run: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    page = Page(browser, tmp_path / "shots")
    with serving([graded_hostile_run]) as server:
        page.open(server.url())
        page.by_id("search").send_keys("onerror")
        page.apply_and_wait()
        assert _matches(page.count()) > 0
        page.click(page.rows()[0])
        page.wait(lambda d: page.by_id("detail").is_displayed())
        responses = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#detail pre.response")]
        assert HOSTILE_REPLY in responses
        assert browser.execute_script("return window.pwned") is None
        assert (
            browser.find_elements(By.CSS_SELECTOR, "#detail script, #table script, #detail img")
            == []
        )
        page.shot("hostile")
        assert severe_console_entries(browser) == []


def test_without_the_token_the_page_is_refused(sample_run: Path, browser: webdriver.Chrome) -> None:
    with serving([sample_run]) as server:
        browser.get(server.url().split("?")[0])
        assert "a valid access token is needed" in browser.find_element(By.TAG_NAME, "body").text
