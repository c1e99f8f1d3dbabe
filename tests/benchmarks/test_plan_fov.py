"""The plan benchmark's scoring: predictions of several test cohorts pooled, the image oracle scored as a
probability on the same cases, paired intervals per seed, runs reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.plan_fov import predictions_file, report, run_one, score


def _cohort(root: Path, name: str, n: int, seed: int) -> tuple[Path, pd.DataFrame]:
    """A test cohort's ground truth and the labels behind it."""
    rng = np.random.default_rng(seed)
    cohort = root / name
    (cohort / "ground_truth").mkdir(parents=True)
    labels = (rng.random(n) < 0.4).astype(int)
    lesion = rng.random(n) < np.where(labels == 1, 0.7, 0.15)
    lines = []
    for i in range(n):
        terms = {
            "prior": -0.6,
            "image": 1.5 if lesion[i] else -1.0,
            "tabular": rng.normal(),
            "text": rng.normal(),
        }
        lines.append(json.dumps({"case_id": f"C{i:04d}", "label": int(labels[i]), "logit_terms": terms}))
    (cohort / "ground_truth" / "truth.jsonl").write_text("\n".join(lines) + "\n")
    return cohort, pd.DataFrame(
        {"case_id": [f"C{i:04d}" for i in range(n)], "label": labels, "lesion": lesion}
    )


def _run(root: Path, name: str, tests: list[tuple[Path, pd.DataFrame]], noise: float, seed: int) -> Path:
    """A finished run whose image model sees the lesion through ``noise``."""
    run = root / name
    run.mkdir()
    rng = np.random.default_rng(seed)
    for cohort, truth in tests:
        probability = 1 / (1 + np.exp(-(truth["lesion"] * 2.0 - 1.0 + rng.normal(0, noise, len(truth)))))
        pd.DataFrame(
            {"case_id": truth["case_id"], "label": truth["label"].astype(float), "probability": probability}
        ).to_parquet(predictions_file(run, cohort))
    history = {"result": {"epochs_run": 5, "best_epoch": 2}}
    (run / "training.json").write_text(json.dumps(history))
    return run


def test_scores_pool_the_test_cohorts_and_compare_with_the_oracle(tmp_path: Path) -> None:
    tests = [_cohort(tmp_path, "t1", 300, 1), _cohort(tmp_path, "t2", 500, 2)]
    runs = {
        ("planned-image", 0): _run(tmp_path, "planned-image-seed0", tests, noise=0.1, seed=3),
        ("fixed-image", 0): _run(tmp_path, "fixed-image-seed0", tests, noise=50.0, seed=4),
    }
    results = score(runs, [cohort for cohort, _ in tests], resamples=200)
    assert results["n_cases"] == 800  # both cohorts, their case ids kept apart
    # a model that sees the lesion reproduces the image oracle's ranking; a blind one is at chance
    gap = results["gap_to_image_oracle"]["planned-image-seed0"]
    assert abs(gap["estimate"]) < 0.01 and gap["low"] <= gap["estimate"] <= gap["high"]
    assert results["gap_to_image_oracle"]["fixed-image-seed0"]["estimate"] > 0.15
    assert results["planned_minus_fixed"]["image-seed0"]["low"] > 0
    assert 0.5 < results["oracle_image_auroc"] <= 1.0 and results["n_positive"] == sum(
        int(t["label"].sum()) for _, t in tests
    )
    text = report(results, ["planned-image", "fixed-image"], [0])
    assert "image oracle − planned-image" in text and "| planned-image | " in text


def test_finished_runs_are_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test = _cohort(tmp_path, "t1", 20, 1)
    _run(tmp_path, "planned-image-seed0", [test], noise=1.0, seed=0)
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("a finished run was run again"))
    run = run_one("planned-image", 0, tmp_path / "train", [test[0]], tmp_path / "c.yaml", tmp_path, 1, [])
    assert run == tmp_path / "planned-image-seed0"
