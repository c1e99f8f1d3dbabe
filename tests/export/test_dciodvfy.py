"""Parsing dciodvfy's findings: a conformant file has none, a file missing a required attribute an error."""

from __future__ import annotations

from pathlib import Path

import pydicom

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.export.dciodvfy import verify


def test_errors_and_warnings_are_told_apart(tmp_path: Path, dciodvfy) -> None:
    cohort = tmp_path / "cohort"
    synthesize_cohort(cohort, SynthOptions(n_cases=10, seed=1, dims=2, size=16, workers=1))
    good = next(cohort.glob("images/*.dcm"))
    report = verify(good)
    assert (report.iod, report.errors, report.warnings) == ("CTImage", [], [])
    dataset = pydicom.dcmread(good)
    del dataset.FrameOfReferenceUID  # type 1 in the Frame of Reference module
    dataset.PatientAddress = "somewhere"  # not part of the CT Image IOD: a warning
    bad = tmp_path / "bad.dcm"
    dataset.save_as(bad)
    report = verify(bad)
    assert any("FrameOfReferenceUID" in e for e in report.errors)
    assert any("Patient's Address" in w for w in report.warnings)
    missing = verify(tmp_path / "absent.dcm")
    assert missing.errors and missing.errors[0].startswith("Abort")
