"""Every computed section of the report is registered once, by the module that computes it."""

from __future__ import annotations

import mmdx.audit.report  # noqa: F401 - imports every section module
from mmdx.audit.sections import AUDIT_SECTIONS, SECTION_TITLES, Section


def test_every_section_but_the_model_card_is_registered_with_a_title() -> None:
    computed = {spec.name for spec in AUDIT_SECTIONS}
    assert computed == set(Section) - {Section.MODEL_CARD}
    assert set(SECTION_TITLES) == set(Section)
    for spec in AUDIT_SECTIONS:
        assert spec.label.format(n_resamples=7) and callable(spec.build)
        assert spec.build.__module__.startswith("mmdx.audit."), spec.name
