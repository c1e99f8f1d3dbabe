"""The HTML report in headless Chromium: no console error, nothing fetched, every figure decoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.audit_runs import BuiltReport

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser(chromium):
    return chromium(window_size="1400,1000", page_load_timeout_s=60, console_log=True)


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
        "external_validation",
    ]
    # the page's styles applied (a broken stylesheet would leave the header unstyled)
    colour = browser.execute_script(
        "return getComputedStyle(document.querySelector('header')).borderBottomStyle"
    )
    assert colour == "solid"


def test_the_report_prints_to_pdf(audit_report: BuiltReport, tmp_path: Path, browser_installed) -> None:
    from mmdx.audit.report import write_report

    files = write_report(audit_report.document, tmp_path, pdf=True)
    assert files.pdf is not None and files.pdf_message is None
    data = files.pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 20_000
