"""The commands that read a synthetic cohort's ground_truth/ (validate, deid) end normally on one partly in
another layout, and say what they skipped."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli import main
from tests.support.foreign_truth import foreign_truth_cohort


def test_a_foreign_truth_file_fails_no_command(tmp_path: Path, capsys) -> None:
    cohort = foreign_truth_cohort(tmp_path / "cohort")
    assert main(["validate", str(cohort), "--no-images"]) == 0
    assert "GROUND_TRUTH_INVALID" in capsys.readouterr().out
    key = tmp_path / "deid.key"
    assert main(["deid", str(cohort), str(tmp_path / "out"), "--key-file", str(key), "--quiet"]) == 0
    assert "ground truth not copied" in capsys.readouterr().out
