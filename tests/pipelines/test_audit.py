"""``mmdx audit`` on the command line: options, printed summary, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np

from pipelines.cli import main
from tests.support.audit_runs import PASSWORD, RUN_NAME, BuiltReport


def test_command_line(audit_report: BuiltReport, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "cli"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code = main(
        [
            "audit",
            str(audit_report.run),
            "--out",
            str(out),
            "--store",
            audit_report.review.url,
            "--user",
            "aud",
            "--password-stdin",
            "--bootstrap",
            "30",
            "--no-robustness",
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    document = json.loads((out / "audit_report.json").read_text())
    assert (out / "audit_report.html").is_file() and document["settings"]["n_resamples"] == 30
    assert document["sections"]["clinician_review"]["status"] == "ok"
    assert "AUROC" in printed and "not available: Robustness" in printed and "Comparison" in printed


def test_command_line_errors(audit_report: BuiltReport, tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["audit", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    missing_store = f"sqlite:///{tmp_path / 'absent.sqlite'}"
    assert main(["audit", str(audit_report.run), "--store", missing_store, "--out", str(tmp_path / "o")]) == 2
    assert "review store not found" in capsys.readouterr().err
    assert not (tmp_path / "absent.sqlite").exists()  # not created as an empty store
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong password\n"))
    args = [
        "audit",
        str(audit_report.run),
        "--store",
        audit_report.review.url,
        "--user",
        "aud",
        "--password-stdin",
    ]
    assert main(args) == 2
    assert "sign-in to the review store" in capsys.readouterr().err
    assert main(["audit", str(audit_report.run), "--bootstrap", "0"]) == 2
    assert "n_resamples must be an integer >= 1" in capsys.readouterr().err


def test_the_run_store_is_found_but_needs_an_account(
    audit_report: BuiltReport, tmp_path: Path, capsys
) -> None:
    run = tmp_path / RUN_NAME
    shutil.copytree(audit_report.run, run, ignore=shutil.ignore_patterns("checkpoints", "audit"))
    store_file = Path(audit_report.review.url.removeprefix("sqlite:///"))
    shutil.copy(store_file, run / "review.sqlite")
    code = main(["audit", str(run), "--bootstrap", "20", "--no-robustness", "--quiet"])
    assert code == 0
    document = json.loads((run / "audit" / "audit_report.json").read_text())
    reason = document["sections"]["clinician_review"]["reason"]
    assert "review.sqlite" in reason and "--user NAME" in reason
    assert np.isfinite(document["sections"]["discrimination"]["by_split"]["test"]["auroc"]["estimate"])
