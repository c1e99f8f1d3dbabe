"""``mmdx import``: one subcommand per registered importer, each with its own --help."""

from __future__ import annotations

import pytest

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
