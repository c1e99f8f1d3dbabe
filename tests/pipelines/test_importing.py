"""``mmdx import``: one subcommand per registered importer, each with its own --help."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.synth.export import export_cohort
from mmdx.errors import MmdxError
from mmdx.importers.registry import IMPORTERS, parse_lookback
from pipelines.cli import main


def test_every_registered_importer_is_a_subcommand(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    text = capsys.readouterr().out
    assert IMPORTERS.names() == ["fhir", "meds", "omop", "dicomweb"]
    for name in IMPORTERS.names():
        assert name in text


@pytest.mark.parametrize(
    ("source", "shape"),
    [
        ("fhir", "SRC_DIR OUT --cases CASES.csv"),
        ("meds", "MEDS_ROOT OUT"),
        ("omop", "URL OUT"),
        ("dicomweb", "URL COHORT"),
    ],
)
def test_command_shapes(source: str, shape: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["import", source, "--help"])
    assert shape.split()[0] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["vital=P1D", "lab = P7D"], {"vital": "P1D", "lab": "P7D"}), ([], {})],
)
def test_lookback_options(values, expected) -> None:
    assert parse_lookback(values) == expected


def test_a_malformed_lookback_option_is_named() -> None:
    with pytest.raises(MmdxError, match="--lookback 'P7D': write KIND=DURATION"):
        parse_lookback(["P7D"])


def test_an_unknown_lookback_kind_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.ndjson").write_text("{}\n")
    (tmp_path / "cases.csv").write_text("case_id,patient_id\n1,2\n")
    args = [
        "import",
        "fhir",
        str(tmp_path / "src"),
        str(tmp_path / "out"),
        "--cases",
        str(tmp_path / "cases.csv"),
    ]
    assert main([*args, "--lookback", "labs=P1D"]) == 2
    assert "--lookback labs: unknown kind; did you mean 'lab'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-case 2D synthetic cohort with its FHIR and MEDS forms under ``export/``."""
    out = tmp_path_factory.mktemp("import-cli") / "synthetic"
    synthesize_cohort(out, SynthOptions(n_cases=10, seed=16, dims=2, size=16, workers=1))
    export_cohort(out, ["fhir", "meds"])
    return out / "export"


@pytest.mark.parametrize(
    ("source", "arguments"),
    [
        ("fhir", ["{export}/fhir", "{out}", "--cases", "{export}/cases.csv"]),
        (
            "meds",
            ["{export}/meds", "{out}", "--labels", "{export}/meds_labels.parquet"]
            + ["--lookback", "vital=P3D", "--lookback", "lab=P3D", "--lookback", "note=P3D"],
        ),
    ],
)
def test_an_import_prints_what_it_wrote_and_what_to_run_next(
    source: str, arguments: list[str], exported: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cohort"
    filled = [a.format(export=exported, out=out) for a in arguments]
    assert main(["import", source, *filled]) == 0
    printed = capsys.readouterr().out
    written = len(pd.read_csv(out / "cases.csv"))
    assert written > 0 and printed.startswith(f"wrote {written} cases (") and f"to {out}" in printed
    assert f"next: mmdx validate {out}" in printed
    if source == "meds":
        assert yaml.safe_load((out / "cohort.yaml").read_text())["lookback"] == {
            "vital": "P3D",
            "lab": "P3D",
            "note": "P3D",
        }


def test_missing_source_and_bad_case_list_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["import", "fhir", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--cases", "x.csv"]) == 2
    assert "FHIR source folder not found" in capsys.readouterr().err
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.ndjson").write_text("{}\n")
    (tmp_path / "cases.csv").write_text("case,patient\n1,2\n")
    args = [
        "import",
        "fhir",
        str(tmp_path / "src"),
        str(tmp_path / "out"),
        "--cases",
        str(tmp_path / "cases.csv"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "required column(s) case_id, patient_id missing" in err and len(err.strip().splitlines()) == 1


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path, capsys) -> None:
    url = "postgresql://mmdx:secret-password@127.0.0.1:1/nothing"
    (tmp_path / "cases.csv").write_text("case_id,patient_id,label,index_time\nc1,1,1,2024-01-01T00:00:00Z\n")
    assert main(["import", "omop", url, str(tmp_path / "out"), "--cases", str(tmp_path / "cases.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmdx import: error: ") and "cannot connect" in err
    assert "secret-password" not in err and len(err.strip().splitlines()) == 1
