"""One cohort holding every kind of input that once broke mmdx, all at once: ``mmdx validate`` and
``mmdx train`` finish normally and report each problem under its own reason code; ``mmdx deid`` drops what
the cohort format does not know; a repeated column in the header stops ``mmdx validate`` in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mmdx.data.issues import IssueCode
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.synth.bombs import write_gzip_bomb, write_lying_nifti
from mmdx.review.case_inputs import CohortCaseReader
from pipelines.cli import main
from tests.conftest import TINY

pytestmark = pytest.mark.slow

ODD_IDS = ("Müller-002", 'O"Brien-7')


def _rename(value: str, renames: dict[str, str]) -> str:
    return renames.get(value, value)


@pytest.fixture(scope="module")
def broken_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("broken") / "cohort"
    synthesize_cohort(root, SynthOptions(n_cases=80, seed=7, dims=2, size=32))
    cases = pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False)
    with_notes = list(dict.fromkeys(json.loads(line)["case_id"] for line in (root / "notes.jsonl").open()))
    renames = dict(zip(with_notes[:2], ODD_IDS, strict=True))  # row 3: ids that JSON escapes, with notes
    cases["case_id"] = cases["case_id"].map(lambda c: _rename(c, renames))
    # row 4: two image bombs, each the image of an extra case that also has a note
    images = root / "bombs"
    images.mkdir()
    write_lying_nifti(images / "liar.nii")
    write_gzip_bomb(images / "bomb.nii.gz")
    nib.save(
        nib.Nifti1Image(np.zeros((4096, 4096, 1), np.float32), np.eye(4)), images / "wide-2d.nii"
    )  # an honest 2D header, then cut short: the size check, not the dimension check, refuses it
    with open(images / "wide-2d.nii", "r+b") as handle:
        handle.truncate(10_000)
    extra = [
        ("bomb-liar", "bombs/liar.nii"),
        ("bomb-gzip", "bombs/bomb.nii.gz"),
        ("cut-2d", "bombs/wide-2d.nii"),
    ]
    for case_id, image in extra:
        row = {c: "" for c in cases.columns} | {
            "case_id": case_id,
            "patient_id": f"P-{case_id}",
            "image": image,
        }
        row |= {"label": "1", "split": "train"}
        cases = pd.concat([cases, pd.DataFrame([row])], ignore_index=True)
    # row 1: pandas writes labels as 1.0/0.0 once one label is empty
    labels = pd.to_numeric(cases["label"].replace("", np.nan))
    labels.iloc[5] = np.nan
    cases["label"] = labels
    cases.to_csv(root / "cases.csv", index=False)
    assert ",1.0," in (root / "cases.csv").read_text()
    # row 6: a column the cohort format does not know
    observations = pd.read_csv(root / "observations.csv", dtype=str, keep_default_na=False)
    observations["case_id"] = observations["case_id"].map(lambda c: _rename(c, renames))
    observations["performer"] = "Mary Brown"
    observations.to_csv(root / "observations.csv", index=False)
    # rows 2, 3, 6, 8 in notes.jsonl: json.dumps defaults, an extra field, a 100,000-deep line, invalid UTF-8
    lines = []
    for raw in (root / "notes.jsonl").read_text(encoding="utf-8").splitlines():
        note = json.loads(raw)
        note["case_id"] = _rename(note["case_id"], renames)
        note["patient_name"] = "Rivera Canary"
        lines.append(json.dumps(note).encode())
    lines += [json.dumps({"case_id": c, "text": "Chest pain."}).encode() for c, _ in extra]
    lines.insert(3, b"[" * 100_000)
    lines.insert(7, b'{"case_id": "x", "text": "caf\xe9"}')
    (root / "notes.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    # row 8: a folder where a cohort file is expected
    (root / "observations.parquet").mkdir()
    return root


@pytest.fixture(scope="module")
def validated(broken_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    report = tmp_path_factory.mktemp("report") / "validation.json"
    assert main(["validate", str(broken_cohort), "--report", str(report), "--workers", "1"]) == 0
    return json.loads(report.read_text())


def _codes(report: dict, case_id: str | None = None) -> set[str]:
    if case_id is None:
        return {i["code"] for i in report["files"]}
    return {i["code"] for c in report["cases"] if c["case_id"] == case_id for i in c["issues"]}


def test_validate_reports_each_problem_under_its_code(validated: dict) -> None:
    assert IssueCode.LABEL_INVALID not in validated["summary"]["issues_by_code"]  # row 1
    files = _codes(validated)
    assert {
        IssueCode.NOTE_LIMIT_EXCEEDED,
        IssueCode.NOTE_ENCODING_INVALID,
        IssueCode.FILE_NOT_REGULAR,
    } <= files
    assert _codes(validated, "bomb-liar") == {IssueCode.IMAGE_WRONG_DIMENSIONS}  # 3D header in a 2D cohort
    assert _codes(validated, "bomb-gzip") == {IssueCode.IMAGE_WRONG_DIMENSIONS}
    assert _codes(validated, "cut-2d") == {IssueCode.NIFTI_INVALID}
    status = {c["case_id"]: c["status"] for c in validated["cases"]}
    assert status["bomb-liar"] == status["bomb-gzip"] == "warning"  # the note still makes them usable
    assert all(status[i] != "rejected" for i in ODD_IDS)


def test_train_finishes_on_the_same_cohort(broken_cohort: Path, tmp_path: Path) -> None:
    from mmdx.run import RunPaths

    overrides = [
        item for o in [*TINY, "train.epochs=1", "data.loader.batch_size=32"] for item in ("--set", o)
    ]
    run = RunPaths(tmp_path / "run")
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--cohort",
                str(broken_cohort),
                "--out",
                str(run.root),
                *overrides,
            ]
        )
        == 0
    )
    assert (run.bundle / "model.safetensors").is_file()
    report = json.loads(run.validation_report.read_text())
    codes = report["summary"]["issues_by_code"]
    assert {
        IssueCode.NOTE_LIMIT_EXCEEDED,
        IssueCode.NOTE_ENCODING_INVALID,
        IssueCode.IMAGE_WRONG_DIMENSIONS,
    } <= set(codes)
    used = {c["case_id"] for c in report["cases"] if c["status"] != "rejected" and c["modalities"]["text"]}
    assert set(ODD_IDS) <= used  # their notes were read for training


def test_the_dashboard_finds_the_notes_of_escaped_ids(broken_cohort: Path) -> None:
    reader = CohortCaseReader(broken_cohort)
    for case_id in ODD_IDS:
        inputs = reader.case(case_id, with_values=False)
        assert inputs.note_text and inputs.notes_problem is None


def test_deid_drops_what_the_format_does_not_know(broken_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "deid"
    assert main(["deid", str(broken_cohort), str(out), "--key-file", str(tmp_path / "k.key"), "--quiet"]) == 0
    report = json.loads((out / "deid_report.json").read_text())
    assert report["observations"]["columns_dropped"] == ["performer"]
    assert report["notes"]["fields_dropped"]["patient_name"] > 0
    assert report["notes"]["unreadable_lines_dropped"] == 1
    written = "".join(
        p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file() and p.suffix != ".nii"
    )
    assert "Mary Brown" not in written and "Rivera" not in written


def test_a_repeated_column_stops_validate_in_one_line(broken_cohort: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "dup"
    shutil.copytree(broken_cohort, copy, ignore=shutil.ignore_patterns("bombs"))
    text = (copy / "cases.csv").read_text().splitlines()
    text[0] = text[0] + ",label"
    (copy / "cases.csv").write_text(
        "\n".join(line + ("," if i else "") for i, line in enumerate(text)) + "\n"
    )
    capsys.readouterr()
    assert main(["validate", str(copy), "--no-images"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'label'" in err
