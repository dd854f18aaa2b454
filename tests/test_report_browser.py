"""The static HTML leaderboard in a real headless Chromium: rows, figures, sorting, a screenshot.

Needs Debian's chromium and chromium-driver (installed by .ci/run); skipped where they are absent.
The screenshot lands in $ROBENCH_ARTIFACTS (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from robench.evaluate import EvalConfig, run_eval
from robench.report import write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromedriver are not installed"),
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_html_leaderboard_shows_rows_figures_and_sorts(tmp_path, fake_models, browser):
    from selenium.webdriver.common.by import By

    out = tmp_path / "report"
    summary = run_eval(EvalConfig(out=out, limit=60, batch_size=30), models=fake_models)
    write_reports(summary.store, out)
    browser.get((out / "index.html").as_uri())

    rows = browser.find_elements(By.CSS_SELECTOR, "#overall tbody tr")
    assert sorted(r.find_elements(By.TAG_NAME, "td")[0].text for r in rows) == ["tiny-gap", "tiny-gcp"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#paired tbody tr")) == 1
    figures = browser.find_elements(By.CSS_SELECTOR, "figure img")
    assert {f.get_attribute("alt") for f in figures} >= {"corruption_bars", "severity_families"}
    for img in figures:  # decoded from the embedded data, no network needed
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 100

    headers = browser.find_elements(By.CSS_SELECTOR, "#overall thead th")
    mce = next(h for h in headers if h.text.strip() == "mCE")
    column = [h.text.strip() for h in headers].index("mCE")

    def values() -> list[float]:
        cells = browser.find_elements(By.CSS_SELECTOR, f"#overall tbody tr td:nth-child({column + 1})")
        return [float(c.get_attribute("data-v")) for c in cells]

    mce.click()
    assert values() == sorted(values())
    mce.click()
    assert values() == sorted(values(), reverse=True)

    artifacts = Path(os.environ.get("ROBENCH_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "leaderboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
