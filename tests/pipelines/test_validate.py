"""``mmdx validate`` on the command line: exit codes and the written report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipelines.cli import main


def test_cli_exit_codes_and_report(defect_cohort: Path, tmp_path: Path, capsys) -> None:
    report_file = tmp_path / "report.json"
    assert main(["validate", str(defect_cohort), "--report", str(report_file), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "DICOM_MIXED_SERIES" in out and "rejected" in out
    report = json.loads(report_file.read_text())
    assert {"cases", "summary", "files"} <= set(report)
    case = report["cases"][0]
    assert {"case_id", "status", "issues"} <= set(case)
    for issue in (i for c in report["cases"] for i in c["issues"]):
        assert {"code", "message", "file"} <= set(issue)

    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err

    empty = tmp_path / "empty"
    shutil.copytree(defect_cohort, empty)
    (empty / "cases.csv").write_text("case_id,patient_id,label\nA,P,maybe\n")
    assert main(["validate", str(empty), "--no-images"]) == 1
