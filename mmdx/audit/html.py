"""Rendering the report document (the JSON twin) as one self-contained HTML page, and printing it to PDF.

:func:`render_html` is a pure function of the document: the template (:mod:`mmdx.audit.template`) lays the
document out, the filters below format its numbers, and :mod:`mmdx.audit.figures` draws its curves from it.
Text from the run (intended use, comments, reasons) is HTML-escaped by Jinja2's autoescaping.

:func:`print_pdf` prints the HTML with headless Chromium when Debian's ``chromium`` is installed; nothing
else here can lay out HTML offline, so without it the PDF is skipped with a message.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined, Template
from markupsafe import Markup

from mmdx.audit.figures import report_figures
from mmdx.audit.sections import SECTION_TITLES
from mmdx.audit.template import STYLE, TEMPLATE
from mmdx.errors import MmdxError

MISSING = "n/a"
#: joins an interval's bounds; non-breaking, so that a table cell never splits an interval over two lines
TO = "\u00a0to\u00a0"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT_S = 180


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fmt_number(value: Any, digits: int = 3) -> str:
    """``0.81234 -> "0.812"``; integers as they are; None (NaN in the JSON) as ``n/a``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}f}" if _finite(value) else MISSING


def fmt_percent(value: Any, digits: int = 1) -> str:
    return f"{100.0 * value:.{digits}f}%" if _finite(value) else MISSING


def fmt_count(value: Any) -> str:
    return f"{value:,}" if _finite(value) else MISSING


def fmt_signed(value: Any, digits: int = 3) -> str:
    return f"{value:+.{digits}f}" if _finite(value) else MISSING


def fmt_scientific(value: Any) -> str:
    return f"{value:.2e}" if _finite(value) else MISSING


def fmt_level(alpha: Any) -> str:
    """The confidence level of ``alpha``: ``0.05 -> "95%"``."""
    return f"{100.0 * (1.0 - alpha):g}%" if _finite(alpha) else MISSING


def fmt_pair(low: Any, high: Any, kind: str = "num") -> str:
    """An interval's bounds, ``"0.712 to 0.845"`` (non-breaking spaces); ``n/a`` unless both are numbers."""
    form = fmt_percent if kind == "pct" else fmt_number
    if not (_finite(low) and _finite(high)):
        return MISSING
    return f"{form(low)}{TO}{form(high)}"


def fmt_bounds(interval: dict[str, Any]) -> str:
    """The bounds of an interval dict, or why it has none."""
    if _finite(interval.get("low")) and _finite(interval.get("high")):
        return fmt_pair(interval["low"], interval["high"])
    return f"{MISSING} ({interval['reason']})" if interval.get("reason") else MISSING


def fmt_interval(interval: dict[str, Any]) -> str:
    """``"95% CI 0.712 to 0.845"``, or why there is none."""
    bounds = fmt_bounds(interval)
    return (
        f"{fmt_level(interval.get('alpha', 0.05))} CI {bounds}" if not bounds.startswith(MISSING) else bounds
    )


@lru_cache(maxsize=1)
def _template() -> Template:
    environment = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=False, keep_trailing_newline=True
    )
    environment.filters.update(
        num=fmt_number,
        pct=fmt_percent,
        count=fmt_count,
        signed=fmt_signed,
        sci=fmt_scientific,
        level=fmt_level,
        pair=fmt_pair,
        bounds=fmt_bounds,
        interval=fmt_interval,
    )
    return environment.from_string(TEMPLATE)


def render_html(document: dict[str, Any]) -> str:
    """The HTML page of a report document (as validated against ``audit_report.schema.json``)."""
    titles = {section.value: title for section, title in SECTION_TITLES.items()}
    return _template().render(
        doc=document, titles=titles, figures=report_figures(document["sections"]), style=Markup(STYLE)
    )


def find_chromium() -> str | None:
    """The path of an installed Chromium (or Chrome) executable, or None."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html_path: str | Path, pdf_path: str | Path, chromium: str | None = None) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium (no network, a throwaway profile).

    Raises :class:`MmdxError` when Chromium is missing or fails.
    """
    executable = chromium or find_chromium()
    if executable is None:
        raise MmdxError(
            "no PDF: Chromium is not installed (apt-get install chromium); the HTML report prints to PDF from "
            "any browser"
        )
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    with tempfile.TemporaryDirectory(prefix="mmdx-pdf-") as home:
        command = [
            executable,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(home) / 'profile'}",
            f"--print-to-pdf={pdf_path}",
            html_path.as_uri(),
        ]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=PDF_TIMEOUT_S,
                env={**os.environ, "HOME": home},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MmdxError(f"no PDF: Chromium could not print the report ({exc})") from None
    if result.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = (result.stderr or "").strip().splitlines()[-3:]
        raise MmdxError(f"no PDF: Chromium exited with status {result.returncode}: {' / '.join(tail)}")
    return pdf_path
