"""The HTML report in headless Chromium: no console error, nothing fetched, every figure decoded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import BuiltReport

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not missing:
        return
    message = f"{', '.join(missing)} not found; install them with: apt-get install chromium chromium-driver"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home = tmp_path / "home"
    home.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={home / 'profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), env={**os.environ, "HOME": str(home)})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_report_opens_without_console_errors_or_network(browser, audit_report: BuiltReport) -> None:
    from selenium.webdriver.common.by import By

    browser.get(audit_report.files.html.resolve().as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == "Model audit report: audit-run"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    # nothing but the page itself was loaded: no stylesheet, script, font or image from anywhere
    assert browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") == []
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])"
    )
    assert len(images) == 8 and all(ok for _, ok in images), images
    sections = browser.execute_script(
        "return Array.from(document.querySelectorAll('main > section')).map(s => s.id)"
    )
    assert sections == [
        "at-a-glance",
        "provenance",
        "model_card",
        "cohort_flow",
        "discrimination",
        "operating_point",
        "calibration",
        "subgroups",
        "robustness",
        "explanations",
        "clinician_review",
        "comparison",
    ]
    # the page's styles applied (a broken stylesheet would leave the header unstyled)
    colour = browser.execute_script(
        "return getComputedStyle(document.querySelector('header')).borderBottomStyle"
    )
    assert colour == "solid"


def test_the_report_prints_to_pdf(audit_report: BuiltReport, tmp_path: Path) -> None:
    _require_browser()
    from mmdx.audit.report import write_report

    files = write_report(audit_report.document, tmp_path, pdf=True)
    assert files.pdf is not None and files.pdf_message is None
    data = files.pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 20_000
