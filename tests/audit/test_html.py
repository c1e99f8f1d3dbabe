"""The HTML page: rendered from the JSON document alone, self-contained, escaped, and schema-checked input."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser

import pytest

from mmdx.audit.html import (
    fmt_bounds,
    fmt_count,
    fmt_interval,
    fmt_level,
    fmt_number,
    fmt_pair,
    fmt_percent,
    fmt_signed,
    render_html,
)
from mmdx.audit.report import validate_report, write_report
from mmdx.errors import MmdxError

from .frames import synthetic_document


class Resources(HTMLParser):
    """Every tag name and every attribute that makes a browser fetch something."""

    FETCHING = {"src", "href", "srcset", "poster", "data", "action", "formaction", "background"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.references: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in self.FETCHING and value is not None:
                self.references.append((tag, name, value))


def references(html: str) -> Resources:
    parser = Resources()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def document() -> dict:
    return synthetic_document(seed=2)


@pytest.fixture(scope="module")
def html(document: dict) -> str:
    return render_html(document)


@pytest.mark.parametrize(
    ("function", "value", "expected"),
    [
        (fmt_number, 0.81234, "0.812"),
        (fmt_number, None, "n/a"),
        (fmt_number, 12, "12"),
        (fmt_percent, 0.5, "50.0%"),
        (fmt_percent, None, "n/a"),
        (fmt_count, 12345, "12,345"),
        (fmt_signed, -0.0412, "-0.041"),
        (fmt_signed, 0.02, "+0.020"),
        (fmt_level, 0.05, "95%"),
        (fmt_level, 0.1, "90%"),
    ],
)
def test_number_formats(function, value, expected: str) -> None:
    assert function(value) == expected


def test_interval_formats_say_why_when_undefined() -> None:
    assert fmt_pair(0.1, 0.25, "pct") == "10.0%\u00a0to\u00a025.0%"
    assert fmt_pair(None, 0.2) == "n/a"
    defined = {"estimate": 0.8, "low": 0.7, "high": 0.9, "alpha": 0.05, "reason": None}
    assert fmt_interval(defined) == "95% CI 0.700\u00a0to\u00a00.900"
    undefined = {"estimate": None, "low": None, "high": None, "alpha": 0.05, "reason": "only one class"}
    assert (
        fmt_bounds(undefined) == "n/a (only one class)" and fmt_interval(undefined) == "n/a (only one class)"
    )


def test_the_page_is_self_contained(html: str) -> None:
    parsed = references(html)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert parsed.references, "the page has figures and in-page links"
    for tag, attribute, value in parsed.references:
        assert value.startswith(("#", "data:image/svg+xml;base64,")), (tag, attribute, value[:60])
    assert "http" not in html.lower() and "url(" not in html and "@import" not in html


def test_figures_are_drawn_from_the_document(html: str) -> None:
    figures = [v for t, a, v in references(html).references if t == "img"]
    # ROC, PR, decision curve, reliability diagram, subgroup forest plot, comparison
    assert len(figures) == 6


@pytest.fixture(scope="module")
def changed_html(document: dict) -> str:
    """The page of a document with a few numbers and texts changed."""
    changed = copy.deepcopy(document)
    auroc = changed["sections"]["discrimination"]["by_split"]["test"]["auroc"]
    auroc.update(estimate=0.123456, low=0.0987, high=0.2468)
    changed["sections"]["operating_point"]["metrics"]["sensitivity"]["estimate"] = 0.4321
    changed["run"]["positive"] = "<script>alert('x')</script>"
    changed["sections"]["robustness"]["reason"] = "<img src=x onerror=alert(1)>"
    return render_html(changed)


def test_every_shown_number_comes_from_the_document(changed_html: str) -> None:
    assert (
        "0.123" in changed_html
        and "95% CI 0.099\u00a0to\u00a00.247" in changed_html
        and "43.2%" in changed_html
    )


def test_rendering_is_deterministic_and_survives_a_json_round_trip(document: dict, html: str) -> None:
    reloaded = json.loads(json.dumps(document, allow_nan=False))
    assert render_html(reloaded) == html


def test_text_from_the_run_is_escaped(changed_html: str) -> None:
    assert "<script>" not in changed_html and "<img src=x" not in changed_html
    assert "&lt;script&gt;" in changed_html and "&lt;img src=x onerror=alert(1)&gt;" in changed_html


def test_unavailable_sections_show_their_reason(html: str) -> None:
    assert "Not available: robustness not computed here" in html
    assert html.count('class="badge not_available"') >= 6


def test_the_synthetic_document_is_valid_and_the_schema_catches_damage(document: dict) -> None:
    validate_report(document)
    broken = copy.deepcopy(document)
    broken["sections"]["robustness"] = {"status": "not_available"}  # a reason is required
    with pytest.raises(MmdxError, match="sections/robustness"):
        validate_report(broken)
    broken = copy.deepcopy(document)
    del broken["sections"]["discrimination"]["by_split"]["test"]["auroc"]["low"]
    with pytest.raises(MmdxError, match="low"):
        validate_report(broken)
    broken = copy.deepcopy(document)
    broken["sections"]["operating_point"]["counts"]["tp"] = -1
    with pytest.raises(MmdxError, match="counts/tp"):
        validate_report(broken)
    broken = copy.deepcopy(document)
    broken["sections"]["calibration"]["status"] = "maybe"
    with pytest.raises(MmdxError, match="calibration"):
        validate_report(broken)
    broken = copy.deepcopy(document)
    broken["sections"]["subgroups"]["surprise"] = 1
    with pytest.raises(MmdxError, match="surprise"):
        validate_report(broken)


def test_without_chromium_the_pdf_is_skipped_with_the_install_hint(
    document: dict, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("mmdx.audit.html.find_chromium", lambda: None)
    files = write_report(document, tmp_path / "out", pdf=True)
    assert files.pdf is None and "apt-get install chromium" in files.pdf_message
    assert (
        files.html.is_file() and files.json.is_file() and not (tmp_path / "out" / "audit_report.pdf").exists()
    )
