"""A synthetic cohort whose ``ground_truth/`` is partly in another layout, as a cohort not written by mmdx
may have it: the readers must skip what does not conform and name it."""

from __future__ import annotations

import json
from pathlib import Path

from mmdx.data.synth import SynthOptions, synthesize_cohort

#: valid JSON in another layout: planted phrases as plain strings
FOREIGN = {"case_id": "C00002", "label": 1, "planted_phrases": ["Positive for rigors."], "mask": None}


def foreign_truth_cohort(cohort: Path) -> Path:
    """Write a 12-case 2D cohort at ``cohort`` whose truth.jsonl has a line in another layout (line 2), one
    that is not JSON (line 4) and a repeated case (line 13), and whose defects.json is not a list."""
    synthesize_cohort(cohort, SynthOptions(n_cases=12, seed=5, dims=2, size=16))
    path = cohort / "ground_truth" / "truth.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = json.dumps(FOREIGN)  # line 2
    lines[3] = "{not json"  # line 4
    lines.append(lines[0])  # line 13: case C00001 again
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (cohort / "ground_truth" / "defects.json").write_text(json.dumps({"planted": "everything"}))
    return cohort
