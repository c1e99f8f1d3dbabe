"""Broken input at the command line: one line on standard error and exit status 2, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.cli import main
from tests.data.test_cohort import note_lines, write_cohort
from tests.test_bundle import _reseal, _set_threshold


def test_a_duplicated_header_ends_validate_in_one_line(tmp_path: Path, capsys) -> None:
    root = write_cohort(tmp_path / "dup", "case_id,patient_id,label,label\na,p1,1,0\n", note_lines())
    assert main(["validate", str(root), "--no-images"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "label" in err and "cases.csv" in err


def test_the_cli_prints_a_bundle_error_in_one_line(
    tiny_run: Path, tmp_path: Path, small_cohort_2d: Path, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "bundle", run / "bundle")
    _set_threshold("abc")(run / "bundle")
    _reseal(run / "bundle")
    assert main(["predict", str(run), str(small_cohort_2d), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "threshold" in err
