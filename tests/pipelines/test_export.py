"""``mmdx export RUN --to DIR`` from the command line: what it prints and its exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.cli import main


def test_exports_the_chosen_case(explained_2d, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    case = explained_2d.dicom[1]
    code = main(["export", str(explained_2d.path), "--to", str(tmp_path / "out"), "--cases", case, "--quiet"])
    assert code == 0
    assert "exported 1 case(s), 2 object(s)" in capsys.readouterr().out
    assert [p.parent.name for p in sorted((tmp_path / "out").glob("*/*.dcm"))] == [case, case]


def test_a_run_without_explanations_is_one_line_naming_the_command(
    explained_2d, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bare = tmp_path / "run"
    shutil.copytree(explained_2d.path, bare, ignore=shutil.ignore_patterns("explanations"))
    assert main(["export", str(bare), "--to", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmdx export: error: ") and "mmdx explain RUN" in err
    assert len(err.strip().splitlines()) == 1
