"""The dashboard's per-case reading of a cohort: notes matched by the parsed case_id, whatever its spelling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmdx.review.case_inputs import CohortCaseReader

SPEC = {"name": "ids", "version": 1, "task": {"label": "pneumonia", "positive": "present", "type": "binary"}}
ODD_IDS = ["Müller-002", 'O"Brien-7', "back\\slash-1", "日本-3", "tab\tid"]


@pytest.fixture
def odd_cohort(tmp_path: Path) -> Path:
    root = tmp_path / "odd"
    root.mkdir()
    (root / "cohort.yaml").write_text(yaml.safe_dump(SPEC))
    rows = ["case_id,patient_id,label", "lost-9,p9,1"] + [
        f'"{cid.replace(chr(34), chr(34) * 2)}",p{i},{i % 2}' for i, cid in enumerate(ODD_IDS)
    ]
    (root / "cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    # json.dumps defaults: non-ASCII as \\uXXXX escapes, quotes and backslashes escaped
    lines = [json.dumps({"case_id": cid, "text": f"Note of {i}."}) for i, cid in enumerate(ODD_IDS)]
    lines.insert(1, "[" * 100_000)  # a line the reader must survive
    lines.append('{"case_id": "lost-9", "text": ')  # the only note of lost-9, cut short
    (root / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("index", range(len(ODD_IDS)))
def test_notes_of_a_case_with_an_escaped_id_are_found(odd_cohort: Path, index: int) -> None:
    inputs = CohortCaseReader(odd_cohort).case(ODD_IDS[index], with_values=False)
    assert inputs.note_text == f"Note of {index}."


def test_a_case_whose_notes_cannot_be_read_says_why(odd_cohort: Path) -> None:
    reader = CohortCaseReader(odd_cohort)
    assert reader.case("Müller-002", with_values=False).problems == []
    lost = reader.case("lost-9", with_values=False)
    assert lost.note_text is None
    assert lost.problems == []  # told only where the case is known to have notes (see notes_problem)
    assert "notes.jsonl" in lost.notes_problem and "lines 2, 7" in lost.notes_problem
    assert reader.case("日本-3", with_values=False).notes_problem is None
