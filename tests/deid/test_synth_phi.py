"""``mmdx synth --phi``: the same cohort as without it, plus canary PHI in every identifying place."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mmdx.data.synth import PHI_CANARIES_FILE, SynthOptions, phi_canaries, synthesize_cohort
from mmdx.errors import MmdxError


def _truth(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "ground_truth" / "truth.jsonl").open()]


def test_phi_adds_identifiers_on_top_of_the_same_cohort(tmp_path: Path, phi2d_defects: Path) -> None:
    plain = tmp_path / "plain"
    synthesize_cohort(plain, SynthOptions(n_cases=40, seed=8, dims=2, size=16, defects=True))
    a, b = _truth(plain), _truth(phi2d_defects)
    assert [t["label"] for t in a] == [t["label"] for t in b]
    assert [t["posterior"] for t in a] == pytest.approx([t["posterior"] for t in b], abs=1e-12)
    assert [t["split"] for t in a] == [t["split"] for t in b]
    cases = pd.read_csv(phi2d_defects / "cases.csv", dtype=str, keep_default_na=False)
    assert {"patient_name", "mrn", "birth_date", "address", "phone", "email"} <= set(cases.columns)
    assert (
        cases["case_id"].str.startswith("CANARYENC").all()
        and cases["patient_id"].str.contains("CANARYMRN").all()
    )
    assert not (plain / PHI_CANARIES_FILE).exists()
    with pytest.raises(MmdxError, match="synth --phi"):
        phi_canaries(plain)


def test_every_note_names_the_patient(phi2d_defects: Path) -> None:
    notes = [
        json.loads(line)
        for line in (phi2d_defects / "notes.jsonl").open()
        if line.startswith('{"case_id": "CANARY')
    ]
    notes = [n for n in notes if "text" in n]
    assert notes and all("CANARY_" in n["text"] for n in notes)
    assert any("(MRN CANARYMRN" in n["text"] and "@example.org" in n["text"] for n in notes)
    kinds = {c["kind"] for c in phi_canaries(phi2d_defects)}
    assert {"family", "mrn", "case_id", "phone", "email", "address", "birth_date", "visit_date"} <= kinds
