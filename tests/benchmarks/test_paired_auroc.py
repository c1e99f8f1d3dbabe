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
    assert "+0.0000 [+0.0000, +0.0000]" in exact[1]


def _truth_file(directory, posterior, labels, splits) -> None:
    import json

    (directory / "ground_truth").mkdir(parents=True)
    with (directory / "ground_truth" / "truth.jsonl").open("w") as fh:
        for i, (p, y, s) in enumerate(zip(posterior, labels, splits, strict=True)):
            fh.write(
                json.dumps({"case_id": f"C{i}", "label": int(y), "posterior": float(p), "split": s}) + "\n"
            )


def test_the_calibration_floor_shows_what_a_lucky_validation_split_does_to_a_perfect_model(tmp_path) -> None:
    from benchmarks.paired_auroc import calibration_floor_lines, truth_frame

    rng = np.random.default_rng(3)
    scored_z = rng.normal(-0.5, 2, 4000)
    scored_p = 1 / (1 + np.exp(-scored_z))
    _truth_file(tmp_path / "scored", scored_p, rng.random(4000) < scored_p, ["test"] * 4000)
    truth = truth_frame(tmp_path / "scored")

    def floor(val_labels_from) -> float:
        z = rng.normal(-0.5, 2, 900)
        p = 1 / (1 + np.exp(-z))
        splits = ["train"] * 600 + ["val"] * 300
        labels = rng.random(900) < val_labels_from(p)
        name = f"train{len(list(tmp_path.iterdir()))}"
        _truth_file(tmp_path / name, p, labels, splits)
        (line,) = calibration_floor_lines(tmp_path / name, truth, resamples=100, draws=40)
        assert (
            "on 300 validation cases" not in line and "300 validation cases" in line and "4000 cases" in line
        )
        return float(line.split("scores slope ")[1].split(" ")[0])

    # labels drawn from the posterior itself: the perfect model stays about calibrated
    assert 0.8 < floor(lambda p: p) < 1.25
    # a validation split whose labels are more predictable than the posterior says (sharper): the perfect
    # model calibrated on it is over-confident on new cases, slope below 1
    assert floor(lambda p: 1 / (1 + np.exp(-2.5 * np.log(p / (1 - p))))) < 0.75


def test_the_fold_calibration_floor_averages_a_calibration_per_fold(tmp_path) -> None:
    from benchmarks.paired_auroc import fold_floor_lines, truth_frame

    rng = np.random.default_rng(5)
    scored_p = 1 / (1 + np.exp(-rng.normal(-0.5, 2, 4000)))
    _truth_file(tmp_path / "scored", scored_p, rng.random(4000) < scored_p, ["test"] * 4000)
    truth = truth_frame(tmp_path / "scored")
    p = 1 / (1 + np.exp(-rng.normal(-0.5, 2, 1500)))
    splits = ["train"] * 1200 + ["val"] * 300
    _truth_file(tmp_path / "fair", p, rng.random(1500) < p, splits)
    lines = fold_floor_lines(tmp_path / "fair", truth, folds=3, seeds=[0, 1], resamples=100)
    assert len(lines) == 2 and "seed 1" in lines[1] and "3 folds of the 1500 labelled" in lines[0]
    slopes = [float(line.split("slope ")[1].split(" ")[0]) for line in lines]
    assert all(0.85 < s < 1.15 for s in slopes) and slopes[0] != slopes[1]  # the folds differ by seed
    # development labels sharper than the posterior: every fold calibrates the perfect model over-confident
    sharp = 1 / (1 + np.exp(-2.5 * np.log(p / (1 - p))))
    _truth_file(tmp_path / "sharp", p, rng.random(1500) < sharp, splits)
    (line,) = fold_floor_lines(tmp_path / "sharp", truth, folds=3, seeds=[0], resamples=100)
    assert float(line.split("slope ")[1].split(" ")[0]) < 0.75


def test_a_peers_csv_pairs_with_an_mmdx_parquet(tmp_path) -> None:
    from benchmarks.paired_auroc import main, read_predictions

    ids = [f"{i:05d}" for i in range(60)]
    y = [i % 2 for i in range(60)]
    _frame(ids, y, [0.2 + 0.6 * v for v in y]).to_parquet(tmp_path / "ours.parquet")
    _frame(ids, y, [0.5] * 60).to_csv(tmp_path / "peer.csv", index=False)
    assert read_predictions(tmp_path / "peer.csv")["case_id"].iloc[0] == "00000"  # not read as a number
    assert (
        main(
            [
                "--new",
                str(tmp_path / "ours.parquet"),
                "--old",
                str(tmp_path / "peer.csv"),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    pd.DataFrame({"case_id": ids}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SystemExit, match="bad.csv: no column label, probability"):
        read_predictions(tmp_path / "bad.csv")
    with pytest.raises(SystemExit, match="absent.parquet: no such predictions file"):
        read_predictions(tmp_path / "absent.parquet")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(SystemExit, match="broken.parquet: not a readable parquet table"):
        read_predictions(tmp_path / "broken.parquet")
