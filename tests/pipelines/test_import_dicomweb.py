"""``mmdx import dicomweb URL COHORT`` from the command line: against a real Orthanc, an unreachable server and
bad arguments; what it prints and its exit status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mmdx.data.issues import IssueCode
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.dicomweb.connection import ENV_PASSWORD, ENV_USER
from mmdx.importers.dicomweb import REPORT, SOURCE_COLUMN
from pipelines.cli import main
from tests.support.dicomweb_cohorts import by_reference


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clean 2D cohort: its DICOM slices are what the PACS serves."""
    out = tmp_path_factory.mktemp("dicomweb-cli") / "original"
    synthesize_cohort(out, SynthOptions(n_cases=10, seed=33, dims=2, size=16, workers=1))
    return out


def test_import_dicomweb_is_listed_with_its_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--help"])
    assert exit_.value.code == 0
    assert "dicomweb" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["import", "dicomweb", "--help"])
    text = capsys.readouterr().out
    assert "URL COHORT" in text
    for option in ("--parallel", "--password-file", "--ca-bundle", "--quiet"):
        assert option in text


def test_fetches_every_series_and_exits_0(original: Path, pacs_environment, tmp_path: Path, capsys) -> None:
    cohort = tmp_path / "cohort"
    referenced = by_reference(original, cohort, pacs_environment)
    assert referenced
    code = main(["import", "dicomweb", pacs_environment.dicomweb_url, str(cohort), "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"fetched {len(referenced)} series" in out.out
    assert f"{len(referenced)} case(s) now point at their local images" in out.out
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    for case_id in referenced:
        assert (cohort / cases.loc[case_id, "image"]).is_file()
        assert cases.loc[case_id, SOURCE_COLUMN].startswith("dicomweb:")
    # run again: nothing left to fetch
    assert main(["import", "dicomweb", pacs_environment.dicomweb_url, str(cohort), "--quiet"]) == 0
    assert f"fetched 0 series (0 instances), {len(referenced)} already present" in capsys.readouterr().out


def test_an_unreachable_pacs_fails_every_case_and_never_shows_the_password(
    original: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    cohort = tmp_path / "cohort"
    shutil.copytree(original, cohort)
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False)
    dicom = cases["image"].str.endswith(".dcm")
    cases.loc[dicom, "image"] = [f"dicomweb:1.2.{i}/3.4.{i}" for i in range(int(dicom.sum()))]
    cases.to_csv(cohort / "cases.csv", index=False)
    monkeypatch.setenv(ENV_USER, "ana")
    monkeypatch.setenv(ENV_PASSWORD, "unreachable-secret-99")
    code = main(
        ["import", "dicomweb", "http://127.0.0.1:9/dicom-web", str(cohort), "--quiet", "--timeout", "5"]
    )
    out = capsys.readouterr()
    assert code == 1
    assert f"{int(dicom.sum())} case(s) without their image" in out.out
    assert f"  {IssueCode.PACS_UNREACHABLE}: case " in out.out
    report = json.loads((cohort / REPORT).read_text())
    assert [i["code"] for i in report["issues"]] == [IssueCode.PACS_UNREACHABLE] * int(dicom.sum())
    assert "cannot connect" in report["issues"][0]["message"]
    assert "unreachable-secret-99" not in out.out + out.err + (cohort / REPORT).read_text()
    assert "Traceback" not in out.err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--parallel", "0"], "--parallel must be at least 1"),
        (
            ["--user", "ana", "--password-file", "/nonexistent/pw"],
            "cannot read the password file /nonexistent/pw",
        ),
        (["--insecure", "--ca-bundle", __file__], "contradict each other"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    original: Path, tmp_path: Path, arguments: list[str], message: str, capsys
) -> None:
    cohort = tmp_path / "cohort"
    shutil.copytree(original, cohort)
    code = main(["import", "dicomweb", "http://127.0.0.1:9/dicom-web", str(cohort), "--quiet", *arguments])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mmdx import: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_folder_that_is_not_a_cohort_is_one_line(tmp_path: Path, capsys) -> None:
    code = main(["import", "dicomweb", "http://127.0.0.1:9/dicom-web", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "has no cases.csv or cases.parquet" in err and len(err.strip().splitlines()) == 1
