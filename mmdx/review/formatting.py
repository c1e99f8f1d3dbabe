"""Numbers and labels as the reviewer reads them, and the vital-signs table as escaped HTML.

Every string that reaches HTML here passes through :func:`html.escape`; the only markup is built from
numbers. Attribution values are tiny or large depending on the model's calibration, so they are printed with
three significant digits and a sign.
"""

from __future__ import annotations

import html
import math
import re

import pandas as pd

from mmdx.keys import Modality
from mmdx.review.case import CaseView, TabularRow, attribution_extent
from mmdx.store import ReviewStatus

DASH = "\u2014"

STATUS_LABELS: dict[str, str] = {
    ReviewStatus.UNREVIEWED.value: "unreviewed",
    ReviewStatus.REVIEWED_BY_ME.value: "reviewed by me",
    ReviewStatus.REVIEWED_BY_OTHERS.value: "reviewed by others",
    ReviewStatus.DISPUTED.value: "disputed",
}

MODALITY_LABELS: dict[Modality, str] = {
    Modality.IMAGE: "Image",
    Modality.TABULAR: "Vital signs & labs",
    Modality.TEXT: "Clinical notes",
}


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^])")


def plain(text: object) -> str:
    """``text`` made safe to place inside Streamlit markdown (titles, captions, messages): every markdown
    and directive character is backslash-escaped, line breaks become spaces. For identifiers and messages
    that come from files (case ids, run names, paths, cohort settings) and must show as they are."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def format_probability(p: float) -> str:
    """``0.7234 -> "72.3 %"``."""
    return f"{100 * p:.1f} %"


def format_signed(value: float | None) -> str:
    """A signed value with three significant digits (``+0.0123``, ``-1.2e-05``); a dash for ``None``."""
    if value is None or not math.isfinite(value):
        return DASH
    if value == 0:
        return "0"  # neither "+0" nor "-0"
    return f"{value:+.3g}"


def format_number(value: float | None, decimals: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.{max(0, decimals)}f}"


#: UCUM codes written as clinicians write them. A code not listed is written by :func:`human_unit`'s rules.
HUMAN_UNITS: dict[str, str] = {
    "Cel": "\u00b0C",
    "[degF]": "\u00b0F",
    "mm[Hg]": "mmHg",
    "/min": "/min",
    "%": "%",
    "10*3/uL": "\u00d710\u00b3/\u00b5L",
    "10*9/L": "\u00d710\u2079/L",
    "10*6/uL": "\u00d710\u2076/\u00b5L",
    "10*12/L": "\u00d710\u00b9\u00b2/L",
    "umol/L": "\u00b5mol/L",
    "ug/L": "\u00b5g/L",
    "ug/dL": "\u00b5g/dL",
    "ng/mL": "ng/mL",
    "kg/m2": "kg/m\u00b2",
    "a": "years",
    "[iU]/L": "IU/L",
    "U/L": "U/L",
}
_SUPERSCRIPTS = str.maketrans(
    "0123456789-", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b"
)


def human_unit(ucum: str | None) -> str:
    """A UCUM unit code as people write it: ``Cel`` -> °C, ``mm[Hg]`` -> mmHg, ``10*3/uL`` -> ×10³/µL,
    ``umol/L`` -> µmol/L; ``""`` for ``None``."""
    if not ucum:
        return ""
    code = str(ucum)
    if code in HUMAN_UNITS:
        return HUMAN_UNITS[code]
    text = re.sub(r"10\*(-?\d+)", lambda m: "\u00d710" + m.group(1).translate(_SUPERSCRIPTS), code)
    text = re.sub(r"(?<![A-Za-z])u(?=[a-zA-Z])", "\u00b5", text)  # micro: u -> µ (ug, umol, uL)
    text = text.replace("[iU]", "IU").replace("[IU]", "IU")
    return re.sub(r"\[([^\]]*)\]", r"\1", text)


def unit_html(ucum: str | None) -> str:
    """The human unit in an ``<abbr>`` whose hover text is the UCUM code (escaped); ``""`` for ``None``."""
    if not ucum:
        return ""
    shown = html.escape(human_unit(ucum))
    return f'<abbr title="UCUM: {html.escape(str(ucum), quote=True)}" style="text-decoration: none">{shown}</abbr>'


def format_value(row: TabularRow) -> str:
    """The value with its unit as people write it, ``"missing"`` when absent."""
    if row.value is None:
        return "missing"
    if isinstance(row.value, str):
        return row.value
    unit = f" {human_unit(row.unit)}" if row.unit else ""
    return f"{format_number(row.value, row.decimals)}{unit}"


def format_reference(row: TabularRow) -> str:
    """``"60.0 – 100.0 /min"``, or a dash when there is no reference range."""
    if row.reference_low is None or row.reference_high is None:
        return DASH
    unit = f" {human_unit(row.unit)}" if row.unit else ""
    return (
        f"{format_number(row.reference_low, row.decimals)} \u2013 "
        f"{format_number(row.reference_high, row.decimals)}{unit}"
    )


def _with_unit_html(text: str, row: TabularRow) -> str:
    """``text`` (ending in the human unit) escaped, the unit wrapped by :func:`unit_html`."""
    unit = human_unit(row.unit)
    if not row.unit or not text.endswith(" " + unit):
        return html.escape(text)
    return f"{html.escape(text[: -len(unit)])}{unit_html(row.unit)}"


def abnormal_flag(row: TabularRow) -> str:
    """``"high"``, ``"low"`` (outside the reference range), ``"normal"``, or ``""`` when unknown."""
    if row.abnormal is None or not isinstance(row.value, float | int):
        return ""
    if not row.abnormal:
        return "normal"
    if row.reference_high is not None and row.value > row.reference_high:
        return "high"
    if row.reference_low is not None and row.value < row.reference_low:
        return "low"
    return "abnormal"


_FLAG_STYLE = {
    "high": "color: #b00020; font-weight: 600",
    "low": "color: #b00020; font-weight: 600",
    "abnormal": "color: #b00020; font-weight: 600",
    "normal": "color: #2e7d32",
    "": "",
}
_FLAG_TEXT = {"high": "\u25b2 high", "low": "\u25bc low", "abnormal": "abnormal", "normal": "normal", "": ""}


def attribution_bar_html(value: float | None, extent: float, width_px: int = 120) -> str:
    """A horizontal bar centred at zero: red to the right for positive values, blue to the left for
    negative ones, its length relative to ``extent`` (the largest absolute value in the table)."""
    if value is None or not math.isfinite(value) or extent <= 0:
        return f'<div style="width: {width_px}px; color: #888">{DASH}</div>'
    half = width_px / 2
    length = min(1.0, abs(value) / extent) * half
    left = half if value >= 0 else half - length
    colour = "#d62728" if value >= 0 else "#1f77b4"
    return (
        f'<div style="position: relative; width: {width_px}px; height: 12px; background: #f1f1f1">'
        f'<div style="position: absolute; left: {half - 0.5:.1f}px; width: 1px; height: 12px; background: #999"></div>'
        f'<div style="position: absolute; left: {left:.1f}px; width: {length:.1f}px; height: 12px; '
        f'background: {colour}"></div></div>'
    )


def tabular_table_html(rows: list[TabularRow]) -> str:
    """Vital signs and labs as an HTML table: name, value and unit, reference range, flag, attribution
    value and bar. Every text cell is escaped."""
    extent = attribution_extent(rows)
    head = "".join(
        f'<th style="text-align: left; padding: 2px 8px">{html.escape(h)}</th>'
        for h in ("Measurement", "Value", "Reference range", "Flag", "Attribution", "")
    )
    body = []
    for row in rows:
        flag = abnormal_flag(row)
        cells = [
            html.escape(row.display),
            _with_unit_html(format_value(row), row),
            _with_unit_html(format_reference(row), row),
            f'<span style="{_FLAG_STYLE[flag]}">{html.escape(_FLAG_TEXT[flag])}</span>',
            html.escape(format_signed(row.attribution)),
            attribution_bar_html(row.attribution, extent),
        ]
        style = ' style="color: #888"' if row.missing else ""
        body.append(
            f"<tr{style}>"
            + "".join(f'<td style="padding: 2px 8px; white-space: nowrap">{c}</td>' for c in cells)
            + "</tr>"
        )
    return (
        '<table class="mmdx-tabular" style="border-collapse: collapse; font-size: 0.9rem">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def contributions_frame(view: CaseView) -> pd.DataFrame:
    """One row per modality: present, Shapley value, gate, summed attribution, each column named for what
    it is (see :data:`mmdx.review.case.SHAPLEY_MEANING` and :data:`~mmdx.review.case.GATE_MEANING`)."""
    records = []
    hidden = view.gate_notes
    for c in view.contributions:
        if not c.in_model:
            presence = "not used by the model"
        else:
            presence = "present" if c.present else "missing"
        records.append(
            {
                "Modality": MODALITY_LABELS[c.modality],
                "Presence": presence,
                "Shapley value (logit, vs. no information)": c.shapley,
                "Gate (fusion weight, 0-1)": None if c.modality in hidden else c.gate,
                "Summed attribution (logit, vs. baseline)": c.attribution_total,
            }
        )
    frame = pd.DataFrame.from_records(records)
    used = [c for c in view.contributions if c.in_model and c.present]
    if used and all(c.modality in hidden for c in used):
        frame = frame.drop(columns=["Gate (fusion weight, 0-1)"])
    numbers = [c for c in frame.columns if c not in ("Modality", "Presence")]
    frame[numbers] = frame[numbers].astype("float64")  # None -> NaN: an empty cell, not the word "None"
    return frame
