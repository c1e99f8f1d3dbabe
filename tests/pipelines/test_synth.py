"""``mmdx synth`` from the command line: the cohort, and its FHIR/MEDS/OMOP forms with ``--export``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main


def test_synth_with_export_writes_each_format_and_says_where(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cohort"
    args = [
        "synth",
        str(out),
        "--cases",
        "10",
        "--dims",
        "2",
        "--size",
        "16",
        "--workers",
        "1",
        "--seed",
        "3",
    ]
    assert main([*args, "--export", "fhir", "--export", "meds"]) == 0
    printed = capsys.readouterr().out
    assert f"exported as fhir, meds to {out}/export/" in printed
    assert "  fhir: " in printed and "  meds: " in printed
    assert (out / "cohort.yaml").is_file() and (out / "export" / "cases.csv").is_file()
    assert any((out / "export" / "fhir").glob("*.ndjson"))
    assert (out / "export" / "meds_labels.parquet").is_file()
    assert not (out / "export" / "omop").exists()


def test_an_unknown_export_format_is_refused_by_the_parser(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["synth", str(tmp_path / "c"), "--cases", "10", "--export", "hl7"])
    assert exit_.value.code == 2
    assert "invalid choice: 'hl7'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
