"""`mmdx evaluate --name`, `mmdx predict --calibration` and `mmdx synth --site-shift` on the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main


def test_external_options_need_a_site_and_a_cohort(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(tiny_run), "--local-sample", "10"]) == 2
    assert "add --name SITE" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--name", "harbour"]) == 2
    assert "--cohort DIR" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--cohort", str(tiny_run), "--name", "../up"]) == 2
    assert "site name" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_as_a_site_then_predict_with_its_recalibration(
    tiny_run: Path, small_cohort_2d: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    args = ["evaluate", str(run), "--cohort", str(small_cohort_2d), "--name", "site-b", "--workers", "1"]
    assert main([*args, "--local-sample", "40", "--recalibrate", "intercept", "--resamples", "20"]) == 0
    out = capsys.readouterr().out
    assert "the run's own files are unchanged" in out and "drift (Holm" in out
    assert not (run / "predictions.parquet").exists()  # the run's own evaluation was not written
    artefact = run / "calibrations" / "site-b-v1"
    assert (run / "external" / "site-b" / "drift.json").is_file() and artefact.is_dir()
    target = tmp_path / "p.csv"
    assert (
        main(
            ["predict", str(run), str(small_cohort_2d), "--out", str(target), "--calibration", str(artefact)]
        )
        == 0
    )
    assert "recalibrated locally" in capsys.readouterr().out


def test_synth_site_shift(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "site"
    assert main(["synth", str(out), "--cases", "30", "--dims", "2", "--size", "16", "--site-shift"]) == 0
    spec = yaml.safe_load((out / "cohort.yaml").read_text())
    assert spec["generator"]["site_shift"]["shifted_features"] == ["creatinine", "glucose", "spo2"]
    assert main(["synth", str(tmp_path / "x"), "--cases", "30", "--site-shift", "--mr-site"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
