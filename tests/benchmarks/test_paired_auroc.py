"""The paired AUROC comparison scores the labelled cases every file holds and pairs files seed by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.paired_auroc import common_cases, compare


def _frame(ids: list[str], labels: list[float], p: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"case_id": ids, "label": labels, "probability": p})


def test_only_labelled_cases_every_file_holds_are_scored() -> None:
    a = _frame(["1", "2", "3", "4"], [1.0, 0.0, np.nan, 1.0], [0.9, 0.2, 0.5, 0.7])
    b = _frame(["4", "2", "1"], [1.0, 0.0, 1.0], [0.6, 0.3, 0.8])
    y, (pa, pb) = common_cases([a, b])
    assert y.tolist() == [1, 0, 1]
    assert pa.tolist() == [0.9, 0.2, 0.7] and pb.tolist() == [0.8, 0.3, 0.6]  # aligned by case id


def test_a_better_model_comes_out_ahead_and_unpaired_files_are_refused() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.4).astype(float)
    ids = [str(i) for i in range(y.size)]
    good = [_frame(ids, y, 1 / (1 + np.exp(-(3 * y - 1.5 + rng.normal(0, 1, y.size))))) for _ in range(2)]
    poor = [_frame(ids, y, 1 / (1 + np.exp(-(y - 0.5 + rng.normal(0, 1, y.size))))) for _ in range(2)]
    lines = compare(good, poor, resamples=200)
    assert lines[0].startswith("600 labelled cases")
    low = float(lines[-1].split("[")[1].split(",")[0])
    assert lines[-1].startswith("seed mean") and low > 0
    with pytest.raises(SystemExit, match="pair them seed by seed"):
        compare(good, poor[:1], resamples=10)


def test_calibration_lines_tell_a_calibrated_model_from_an_overconfident_one() -> None:
    from benchmarks.paired_auroc import calibration_lines

    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, 3000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(float)
    ids = [str(i) for i in range(z.size)]
    calibrated = _frame(ids, y, 1 / (1 + np.exp(-z)))
    overconfident = _frame(ids, y, 1 / (1 + np.exp(-3 * z)))
    lines = calibration_lines(["new a", "old b"], [calibrated], [overconfident], resamples=200)

    def slope(line: str) -> tuple[float, float, float]:
        value, interval = line.split("slope ")[1].split(" [", 1)
        low, high = interval.split("]")[0].split(", ")
        return float(value), float(low), float(high)

    estimate, low, high = slope(lines[0])
    assert low < 1 < high and lines[0].startswith("new a")
    assert slope(lines[1])[2] < 0.5  # three times too confident: slope about 1/3
    assert "perfectly calibrated at this n" in lines[1]


def test_the_bayes_gap_is_read_from_the_cohorts_posterior(tmp_path) -> None:
    import json

    from benchmarks.paired_auroc import bayes_gap_lines, truth_frame

    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 800)
    posterior = 1 / (1 + np.exp(-z))
    y = (rng.random(z.size) < posterior).astype(int)
    (tmp_path / "ground_truth").mkdir()
    with (tmp_path / "ground_truth" / "truth.jsonl").open("w") as fh:
        for i in range(z.size):
            fh.write(
                json.dumps({"case_id": f"C{i}", "label": int(y[i]), "posterior": float(posterior[i])}) + "\n"
            )
    truth = truth_frame(tmp_path)
    ids = [f"C{i}" for i in range(z.size)]
    noisy = [_frame(ids, y, 1 / (1 + np.exp(-(z + rng.normal(0, 2, z.size))))) for _ in range(2)]
    lines = bayes_gap_lines(noisy, truth, resamples=200)
    assert lines[0].startswith("Bayes-optimal AUROC") and "on 800 cases" in lines[0]
    assert lines[-1].startswith("seed mean: Bayes − new")
    assert float(lines[-1].split("[")[1].split(",")[0]) > 0  # a noisier model is behind the posterior
    exact = bayes_gap_lines([_frame(ids, y, posterior)], truth, resamples=50)
    assert "+0.000 [+0.000, +0.000]" in exact[1]
