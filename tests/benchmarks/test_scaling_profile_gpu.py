"""Scaling table arithmetic, the profiler's phase accounting, and the GPU check's refusal without a GPU."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks.profile_step import PHASES, REGION, outside_arithmetic_share, phase_table, phase_times
from benchmarks.scaling import Setting, linear_fit, summarise, table, trends

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------------------
# scaling


def test_linear_fit_recovers_a_line():
    a, b, r2 = linear_fit([500, 1000, 2000, 4000], [1 + 0.01 * n for n in (500, 1000, 2000, 4000)])
    assert a == pytest.approx(1.0) and b == pytest.approx(0.01) and r2 == pytest.approx(1.0)
    _, _, noisy = linear_fit([1, 2, 3, 4], [1, 3, 2, 4])
    assert 0 < noisy < 1
    assert math.isnan(linear_fit([1.0], [2.0])[1])


def _result(cases: int, seconds_per_case: float, peak: float) -> dict:
    train = int(cases * 0.7)
    history = [
        {"seconds": s, "samples_per_second": train / s, "data_wait_share": 0.1}
        for s in (train * seconds_per_case * 1.5, train * seconds_per_case)
    ]
    return summarise({"training": {"result": {"history": history}}, "peak_mib": peak, "seconds": 99.0})


def test_summarise_reads_the_steady_state_epoch():
    s = _result(1000, 0.002, 800.0)
    assert s["train_cases"] == 700
    assert s["last_epoch_seconds"] == pytest.approx(1.4) and s["first_epoch_seconds"] == pytest.approx(2.1)
    assert s["ms_per_case"] == pytest.approx(2.0)
    assert s["seconds_per_epoch"] == pytest.approx(1.75)


def test_trends_show_linear_time_and_flat_or_growing_memory():
    rows = []
    for n in (500, 1000, 2000, 4000):
        rows.append((Setting(n, "disk", 0), _result(n, 0.002, 700.0)))
        rows.append((Setting(n, "memory", 0), _result(n, 0.002, 700.0 + 0.125 * n)))
    lines = trends(rows)
    disk = next(line for line in lines if "cache disk" in line)
    memory = next(line for line in lines if "cache memory" in line)
    assert "1.40 ms per added case" in disk and "R² 1.000" in disk and "+0 MiB per 1,000 cases" in disk
    assert "+125 MiB per 1,000 cases" in memory
    rendered = table(rows)
    assert rendered.count("\n") == len(rows) + 1 and "| 4000 | memory | 0 |" in rendered


# --------------------------------------------------------------------------------------------------------
# profile_step: phases from a profiler event tree


@dataclass
class Span:
    us: float

    def elapsed_us(self) -> float:
        return self.us


@dataclass
class Event:
    name: str
    self_cpu_time_total: float = 0.0
    duration: float = 0.0
    cpu_children: list = field(default_factory=list)

    @property
    def time_range(self) -> Span:
        return Span(self.duration)


def test_phase_times_sum_aten_self_time_inside_each_region():
    conv = Event("aten::convolution", 600.0)
    inner = Event("aten::add", 100.0)
    module = Event("MyModule.forward", 50.0, 900.0, [conv, Event("aten::relu", 150.0, 150.0, [inner])])
    forward = Event(REGION + "forward", 0.0, 1000.0, [module])
    data = Event(REGION + "data", 0.0, 500.0, [Event("aten::stack", 20.0)])
    outside = Event("aten::mm", 999.0)  # not inside any phase: ignored
    phases = {p.name: p for p in phase_times([forward, data, outside, forward], steps=2)}
    assert set(phases) == {"forward", "data"}
    assert phases["forward"].wall_ms == pytest.approx(1.0)  # two events of 1000 us over 2 steps
    assert phases["forward"].aten_ms == pytest.approx(0.85)  # (600 + 150 + 100) us per step
    assert phases["forward"].top[0] == ("aten::convolution", pytest.approx(0.6), 1)
    assert phases["data"].aten_ms == pytest.approx(0.01)


def test_outside_arithmetic_share_and_table():
    phases = phase_times(
        [
            Event(REGION + "forward", 0.0, 4000.0, [Event("aten::mm", 3000.0)]),
            Event(REGION + "backward", 0.0, 4000.0, [Event("aten::mm", 3000.0)]),
            Event(REGION + "optimizer", 0.0, 2000.0, [Event("aten::add_", 2000.0)]),
        ],
        steps=1,
    )
    # 6 ms of forward/backward arithmetic in a 10 ms step: 40% is outside the model's arithmetic
    assert outside_arithmetic_share(phases, 10.0) == pytest.approx(0.4)
    rendered = phase_table(phases, 10.0)
    assert "| optimizer | 2.00 | 20.0% | 2.00 | 0.00 |" in rendered
    assert [p.name for p in phases] == [n for n in PHASES if n in ("forward", "backward", "optimizer")]


# --------------------------------------------------------------------------------------------------------
# gpu_check.sh


def test_gpu_check_is_valid_bash():
    subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu_check.sh")], check=True)


@pytest.mark.skipif(
    subprocess.run(["bash", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0,
    reason="a GPU may be present",
)
def test_gpu_check_refuses_to_run_without_a_gpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MMDX_GPU_CHECK_ALLOW_CPU"}
    result = subprocess.run(
        [
            "bash",
            str(REPO / "benchmarks" / "gpu_check.sh"),
            "--work",
            str(tmp_path),
            "--venv",
            str(tmp_path / "v"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no CUDA GPU found" in result.stderr and "--allow-cpu" in result.stderr
    assert not (tmp_path / "v").exists()  # it stopped before creating anything


def test_gpu_check_rejects_unknown_options():
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--stpes", "3"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "unknown option '--stpes'" in result.stderr


def test_gpu_check_wheels_folder_without_wheels_is_refused(tmp_path):
    env = {**os.environ, "MMDX_GPU_CHECK_ALLOW_CPU": "1"}
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--work", str(tmp_path / "w"),
         "--python", sys.executable, "--wheels", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and f"--wheels: no .whl files in '{tmp_path}'" in result.stderr


@pytest.mark.slow
def test_gpu_check_dry_run_with_the_running_interpreter(tmp_path):
    """The offline path (--python, project on PYTHONPATH) end to end on a CPU, with a config override."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--allow-cpu", "--work", str(tmp_path),
         "--python", sys.executable, "--set", "train.lr=0.0007"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"using {sys.executable} as it is" in result.stdout
    rows = [
        line for line in result.stdout.splitlines() if line.startswith(("| single process", "| torchrun"))
    ]
    assert len(rows) == 2 and rows[0].split("|")[2].strip() == "1" and rows[1].split("|")[2].strip() == "2"
    for run in ("run-single", "run-torchrun"):
        config = (tmp_path / run / "bundle" / "config.yaml").read_text()
        assert "lr: 0.0007" in config and "batch_size: 8" in config  # --set and the dry-run settings
