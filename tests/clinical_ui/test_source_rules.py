"""House rules of the dashboard's code that no behavioural test would notice being broken."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "clinical_ui").rglob("*.py")) + sorted((ROOT / "mmdx" / "review").rglob("*.py"))


def test_no_shared_data_cache_and_no_unescaped_html() -> None:
    """``st.cache_data`` is shared by every user: never for patient data, so not at all here; and no page
    renders markdown as raw HTML (escaped HTML goes through ``st.html``, built in mmdx.review)."""
    assert SOURCES
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        assert "cache_data" not in text, path
        assert not re.search(r"unsafe_allow_html\s*=\s*True", text), path


def test_pages_stay_thin() -> None:
    """Pages hold layout: no pandas or numpy computation and no direct store queries beyond account
    management, which has no library wrapper to add."""
    for path in sorted((ROOT / "clinical_ui" / "views").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "import numpy" not in text and "import pandas" not in text, path
        assert "audit_events(" not in text and "submit_verdict(" not in text.replace(
            "submit_case_verdict(", ""
        ), path
