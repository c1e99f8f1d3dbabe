"""Labels, numbers and the escaped vital-signs table."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmdx.review import TabularRow
from mmdx.review.formatting import (
    abnormal_flag,
    attribution_bar_html,
    format_probability,
    format_reference,
    format_signed,
    format_value,
    plain,
    tabular_table_html,
)


def row(**changes) -> TabularRow:
    base = dict(
        key="crp",
        display="C-reactive protein",
        value=12.0,
        unit="mg/L",
        reference_low=0.0,
        reference_high=5.0,
        abnormal=True,
        attribution=0.002,
        decimals=1,
    )
    return TabularRow(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({}, "high"),
        ({"value": -1.0}, "low"),
        ({"value": 3.0, "abnormal": False}, "normal"),
        ({"abnormal": None}, ""),
        ({"value": None, "abnormal": None}, ""),
        ({"value": "F", "abnormal": None, "unit": None}, ""),
    ],
)
def test_abnormal_flag(changes: dict, flag: str) -> None:
    assert abnormal_flag(row(**changes)) == flag


@given(st.text(max_size=60))
def test_plain_leaves_no_markdown_active(text: str) -> None:
    escaped = plain(text)
    # every special character is preceded by a backslash, and removing the escapes gives the text back
    assert re.sub(r"\\(.)", r"\1", escaped) == " ".join(text.splitlines())
    unescaped = re.sub(r"\\.", "", escaped)
    assert not set(unescaped) & set("\\`*_{}[]()#+-.!|<>~$:=^")
    assert "\n" not in escaped


def test_values_and_ranges_read_naturally() -> None:
    assert format_value(row()) == "12.0 mg/L"
    assert format_value(row(value=None)) == "missing"
    assert format_value(row(value="F")) == "F"
    assert format_reference(row()) == "0.0 \u2013 5.0 mg/L"
    assert format_reference(row(reference_low=None)) == "\u2014"
    assert format_probability(0.7234) == "72.3 %"
    assert format_signed(0.000012345) == "+1.23e-05" and format_signed(-0.5) == "-0.5"
    assert format_signed(None) == "\u2014" and format_signed(0.0) == format_signed(-0.0) == "0"


def test_table_escapes_every_text_cell() -> None:
    html = tabular_table_html([row(display="<img src=x onerror=alert(1)>", unit="<b>u</b>")])
    assert "<img" not in html and "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert set(re.findall(r"<(\w+)", html)) <= {
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "span",
        "div",
        "abbr",
    }


def test_bars_point_by_sign_and_scale_by_size() -> None:
    def bar(value: float, extent: float) -> tuple[float, float, str]:
        html = attribution_bar_html(value, extent, width_px=100)
        left, width, colour = re.findall(
            r"left: ([0-9.]+)px; width: ([0-9.]+)px; height: 12px; background: (#\w+)", html
        )[-1]
        return float(left), float(width), colour

    assert bar(1.0, 1.0) == (50.0, 50.0, "#d62728")  # full length, to the right, red
    assert bar(-0.5, 1.0) == (25.0, 25.0, "#1f77b4")  # half length, to the left, blue
    assert bar(3.0, 1.0)[1] == 50.0  # clipped at the table's extent
    assert "\u2014" in attribution_bar_html(None, 1.0) and "\u2014" in attribution_bar_html(1.0, 0.0)


def test_table_bars_are_relative_to_the_largest_attribution() -> None:
    html = tabular_table_html([row(attribution=0.004), row(attribution=-0.001), row(attribution=None)])
    widths = [
        float(w)
        for w in re.findall(r"width: ([0-9.]+)px; height: 12px; background: #(?:d62728|1f77b4)", html)
    ]
    assert widths == [60.0, 15.0]


@pytest.mark.parametrize(
    ("ucum", "human"),
    [
        ("Cel", "\u00b0C"),
        ("mm[Hg]", "mmHg"),
        ("10*3/uL", "\u00d710\u00b3/\u00b5L"),
        ("10*9/L", "\u00d710\u2079/L"),
        ("umol/L", "\u00b5mol/L"),
        ("mg/dL", "mg/dL"),
        ("/min", "/min"),
        ("%", "%"),
        ("ug/mL", "\u00b5g/mL"),  # not listed: written by the rules
        ("[degF]", "\u00b0F"),
    ],
)
def test_units_are_written_as_people_write_them(ucum: str, human: str) -> None:
    from mmdx.review.formatting import human_unit

    assert human_unit(ucum) == human


def test_the_ucum_code_shows_on_hover() -> None:
    html = tabular_table_html([row(unit="Cel", value=38.4, reference_low=36.1, reference_high=37.8)])
    assert '<abbr title="UCUM: Cel"' in html and "\u00b0C</abbr>" in html
    shown = re.sub(r'title="[^"]*"', "", html)  # what the page shows, hover texts aside
    assert "Cel" not in shown and shown.count("\u00b0C</abbr>") == 2
