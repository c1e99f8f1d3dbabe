"""DistributedDataParallel: two gloo processes under torchrun train the same code path to a bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_gloo_training(small_cohort_2d: Path, tmp_path: Path, tiny) -> None:
    TINY, _ = tiny
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.exists() or shutil.which("torchrun")
    out = tmp_path / "ddp"
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pipelines.cli",
        "train",
        "--config",
        str(REPO / "configs/demo.yaml"),
        "--cohort",
        str(small_cohort_2d),
        "--out",
        str(out),
        "--quiet",
    ]
    for o in [*TINY, "train.epochs=2"]:
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "bundle" / "manifest.json").is_file()
    assert "trained" in result.stdout and result.stdout.count("trained") == 1  # only rank 0 reports
