"""Foreign but valid input end to end: a cohort of real files (pydicom, pydicom-data, nibabel) and a
synthetic cohort with every planted defect go through the command line without a Python traceback, and the
preprocessing plan makes each image it accepts fill most of the model grid.

The real-files cohort: pydicom's and pydicom-data's CT, MR and CR images and nibabel's test volumes, with
LOINC-coded values in the units and spellings of real extracts, and notes. The images differ in field of
view, resolution, modality, transfer syntax and dimensionality; some cannot be used at all (a JPEG Extended
file that does not decode, a 4D NIfTI, a volume with NaN voxels, a series folder whose slices disagree).
Labels follow a lab value and a note phrase, so a model has something to learn; the images carry none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nibabel.testing import data_path as nibabel_data
from pydicom.data import get_testdata_file

from mmdx.bundle import load_bundle
from mmdx.data.dataset import preprocess_volume
from mmdx.data.imaging import read_image
from mmdx.data.plan import MIN_GRID_COVERAGE

#: pydicom (and pydicom-data) test files, by name
DICOM_FILES = [
    "CT_small.dcm",  # CT, 128 x 0.66 mm
    "MR_small.dcm",  # MR, 64 x 0.31 mm: a 20 mm field of view
    "MR_small_RLE.dcm",  # the same MR image, RLE Lossless
    "MR_small_jp2klossless.dcm",  # and JPEG 2000
    "693_UNCI.dcm",  # CT, 512 x 0.48 mm (pydicom-data)
    "693_J2KI.dcm",  # the same CT, lossy JPEG 2000
    "MR2_UNCI.dcm",  # MR, 1024 x 0.2 mm, oriented PIR
    "RG1_UNCI.dcm",  # CR, MONOCHROME1, no usable PixelSpacing
    "RG3_UNCR.dcm",  # CR, MONOCHROME1
    "JPEG-lossy.dcm",  # NM, JPEG Extended that no installed decoder decodes correctly
]
NIFTI_FILES = [
    "anatomical.nii",  # a 3D head volume, 2 mm, LAS
    "reoriented_anat_moved.nii",  # 3D, 4 mm, RAS
    "example4d.nii.gz",  # 4D: refused
    "resampled_anat_moved.nii",  # NaN voxels: refused
]
SERIES = ["dicomdirtests/98892001/CT5N", "dicomdirtests/98892003/MR700"]  # a small CT stack; a mixed series


def _pydicom_folder(relative: str) -> Path:
    return Path(get_testdata_file("CT_small.dcm")).parent / relative


def real_file_cohort(out: Path, cases_per_image: int = 2) -> Path:
    """Write the cohort to ``out``; each image appears in ``cases_per_image`` cases (copied files)."""
    images = out / "images"
    images.mkdir(parents=True)
    sources: list[tuple[str, Path]] = [(name, Path(get_testdata_file(name))) for name in DICOM_FILES]
    sources += [(name, Path(nibabel_data) / name) for name in NIFTI_FILES]
    sources += [(Path(s).name, _pydicom_folder(s)) for s in SERIES]
    rows, observations, notes = [], [], []
    number = 0
    for copy in range(cases_per_image):
        for name, source in sources:
            number += 1
            case_id = f"R{number:03d}"
            target = images / f"{copy}_{name}"
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy(source, target)
            label = number % 2
            split = ("train", "train", "val", "train", "test")[number % 5]
            rows.append(
                f"{case_id},P{number:03d},{label},{split},images/{target.name},{40 + number},{'FM'[number % 2]}"
            )
            crp = ("<0.5", "3,1", "12.5") if label == 0 else ("48", "95.2", ">300")
            observations += [
                f'{case_id},1988-5,"{crp[number % 3]}",mg/L,2024-03-0{1 + number % 8}T08:00:00Z',  # "3,1" is quoted
                f"{case_id},6690-2,{6.5 + 5 * label + (number % 4) * 0.3:.1f},K/uL,2024-03-01T09:00:00Z",
                f"{case_id},777-3,{220 + number},x10^9/L,2024-03-01T09:00:00Z",
                f"{case_id},8310-5,{37.0 + 1.2 * label:.1f},C,2024-03-01T10:00:00Z",
                f"{case_id},2160-0,{70 + number},\u03bcmol/L,2024-03-01T09:00:00Z",
                f"{case_id},2339-0,{5.4 + 0.1 * (number % 5):.1f},mmol/L,2024-03-01T09:00:00Z",
            ]
            finding = "Consolidation in the right lower lobe." if label else "No consolidation."
            notes.append(
                {
                    "case_id": case_id,
                    "text": f"Seen on the ward round. {finding} Cough for {2 + number % 4} days.",
                    "note_type": "progress note",
                    "time": "2024-03-01T12:00:00Z",
                }
            )
    (out / "cohort.yaml").write_text(
        "name: real-files\nversion: '1'\n"
        "description: pydicom, pydicom-data and nibabel test images with hand-written values and notes\n"
        "task: {label: label, positive: pneumonia, type: binary}\n"
        "image: {modality: MR}\n",  # the NIfTI volumes are MR; DICOM files carry their own Modality
        encoding="utf-8",
    )
    (out / "cases.csv").write_text(
        "case_id,patient_id,label,split,image,age,sex\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    (out / "observations.csv").write_text(
        "case_id,code,value,unit,time\n" + "\n".join(observations) + "\n", encoding="utf-8"
    )
    (out / "notes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes), encoding="utf-8")
    return out


REPO = Path(__file__).resolve().parents[2]
TINY = [
    "train.epochs=2",
    "train.threads=1",
    "data.loader.batch_size=8",
    "data.text.max_length=32",
    "data.text.vocab_size=100",
    "data.text.min_frequency=1",
    "model.image.channels=[8, 16]",
    "model.image.out_dim=16",
    "model.tabular={name: mlp, dim: 16, hidden_dim: 32}",
    "model.text={name: text_cnn, dim: 16, channels: 16, embedding_dim: 16}",
    "model.fusion.dim=16",
]


def mmdx(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the command line in a fresh process, as a user would; stdout and stderr together."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )


def assert_quiet(result: subprocess.CompletedProcess, rc: int = 0) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "unexpected error" not in output, output[-3000:]
    assert result.returncode == rc, output[-3000:]
    return output


def in_process(*args: str) -> str:
    """Run the command line in this process (no interpreter start-up) and return what it printed; fails on
    a non-zero exit, a printed traceback, an "unexpected error" or a log record carrying a traceback. The
    decoders' logging is covered by :func:`mmdx` (a fresh process, as a user sees it) in the validation."""
    import contextlib
    import io
    import logging

    from pipelines.cli import main

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    keep, out = Keep(), io.StringIO()
    logging.getLogger().addHandler(keep)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = main(list(args))
    finally:
        logging.getLogger().removeHandler(keep)
    text = out.getvalue() + "".join(f"{r.levelname} {r.getMessage()}\n" for r in keep.records)
    assert rc == 0, text[-3000:]
    assert "Traceback" not in text and "unexpected error" not in text, text[-3000:]
    assert not [r for r in keep.records if r.exc_info], text[-3000:]
    return text


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """validate -> train (2 epochs) -> evaluate -> explain -> audit on the real-files cohort."""
    root = tmp_path_factory.mktemp("real")
    cohort = real_file_cohort(root / "cohort")
    run = root / "run"
    outputs = {
        "validate": assert_quiet(
            mmdx("validate", str(cohort), "--config", "configs/demo.yaml", "--report", str(root / "v.json"))
        ),
        "train": in_process(
            "train",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            "--cohort",
            str(cohort),
            "--out",
            str(run),
            "--quiet",
            *_sets(TINY),
        ),  # fmt: skip
        "evaluate": in_process("evaluate", str(run)),
        # an MR patch, a radiograph and two volumes (seen through their centre slices)
        "explain": in_process(
            "explain", str(run), "--cases", "R004", "R024", "R011", "R015", "--choice-cases", "4"
        ),
        "audit": in_process("audit", str(run)),
    }
    return {
        "cohort": cohort,
        "run": run,
        "outputs": outputs,
        "report": json.loads((root / "v.json").read_text()),
    }


@pytest.mark.slow
def test_every_broken_real_file_has_its_reason_code(real_run: dict) -> None:
    codes = real_run["report"]["summary"]["issues_by_code"]
    for code in (
        "IMAGE_UNREADABLE",  # the JPEG Extended file that decodes badly: its syntax is supported
        "IMAGE_WRONG_DIMENSIONS",  # 4D NIfTI
        "NIFTI_INVALID",  # NaN voxels
        "DICOM_INCONSISTENT_GEOMETRY",  # a series folder mixing orientations
        "LOINC_NOT_IN_CATALOGUE",  # 2339-0, glucose in blood
        "VALUE_CENSORED",
        "VALUE_DECIMAL_COMMA",
        "IMAGE_FOV_MISMATCH",  # the 20 mm MR patches among 85-250 mm CT slices
        "IMAGE_CENTRE_SLICE",  # the volumes of a cohort planned as 2D
    ):
        assert code in codes, code
    assert "TRANSFER_SYNTAX_UNSUPPORTED" not in codes and "UNIT_UNKNOWN" not in codes
    unreadable = [
        i["message"]
        for c in real_run["report"]["cases"]
        for i in c["issues"]
        if i["code"] == "IMAGE_UNREADABLE"
    ]
    assert unreadable and all("pylibjpeg" in m for m in unreadable)  # names the decoder that failed


@pytest.mark.slow
def test_accepted_images_fill_most_of_the_planned_grid(real_run: dict) -> None:
    bundle = load_bundle(real_run["run"])
    plan = bundle.preprocessing.image_plan
    report = json.loads((real_run["run"] / "validation_report.json").read_text())
    cases = {c["case_id"]: c for c in report["cases"]}
    rows = {
        line.split(",")[0]: line.split(",")[4]
        for line in (real_run["cohort"] / "cases.csv").read_text().splitlines()[1:]
    }
    checked = 0
    for case_id, case in cases.items():
        codes = {i["code"] for i in case["issues"]}
        if not case["modalities"].get("image"):
            continue
        volume = read_image(real_run["cohort"] / rows[case_id])
        ones, _ = preprocess_volume(np.ones_like(volume.array), volume.affine, plan, is_mask=True)
        coverage = float(ones.mean())
        if "IMAGE_FOV_MISMATCH" in codes:
            assert coverage < MIN_GRID_COVERAGE, case_id
        else:
            assert coverage > MIN_GRID_COVERAGE, (case_id, coverage)
            checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_a_volume_under_the_2d_plan_is_explained_on_its_centre_slice(real_run: dict) -> None:
    from mmdx.explain.artifacts import INDEX

    index = json.loads((real_run["run"] / "explanations" / INDEX).read_text())
    explained = {c["case_id"] for c in index["cases"]}
    cases = (real_run["cohort"] / "cases.csv").read_text().splitlines()[1:]
    volumes = {
        line.split(",")[0] for line in cases if line.split(",")[4].endswith(("anatomical.nii", "_CT5N"))
    }
    assert explained == {"R004", "R024", "R011", "R015"} and len(explained & volumes) == 2


@pytest.mark.slow
def test_the_plan_travels_in_the_bundle_and_the_audit(real_run: dict) -> None:
    document = json.loads((real_run["run"] / "bundle" / "preprocessing.json").read_text())
    assert document["schema_version"] == 2 and document["image"]["dims"] == 2
    assert set(document["image_fingerprint"]["modalities"]) == {"CT", "MR", "XR"}
    audit = json.loads((real_run["run"] / "audit" / "audit_report.json").read_text())
    provenance = audit["sections"]["provenance"]
    assert provenance["preprocessing"]["image_plan"] == document["image"]
    # 13 validation cases at most: the temperature cannot be trusted, and every output says so
    card = audit["sections"]["model_card"]
    assert any("validation split is too small" in w for w in card["warnings"])
    assert "validation split is too small" in real_run["outputs"]["train"]


@pytest.mark.slow
def test_the_synthetic_defects_print_no_traceback(defect_cohort: Path, tmp_path: Path) -> None:
    assert_quiet(mmdx("validate", str(defect_cohort), "--config", "configs/ct3d.yaml"))
    in_process("plan", str(defect_cohort))
    run = tmp_path / "run"
    tiny = [t for t in TINY if not t.startswith("train.epochs")] + ["train.epochs=1"]
    config = str(REPO / "configs" / "ct3d.yaml")
    printed = in_process(
        "train",
        "--config",
        config,
        "--cohort",
        str(defect_cohort),
        "--out",
        str(run),
        "--quiet",
        *_sets(tiny),
    )
    # the 3D default: an ensemble whose members each train without one fold and are calibrated on it
    assert "each member calibrated on the fold it did not train on" in printed
    assert "out-of-fold AUROC" in printed and "training and validation cases)" in printed
    in_process("predict", str(run), str(defect_cohort), "--out", str(tmp_path / "p.csv"))
