"""The contrastive-pretraining comparison: paired on the cases both runs labelled, and the pretraining record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.contrastive import compare, pretraining


def test_compare_pairs_the_cases_both_runs_predicted() -> None:
    rng = np.random.default_rng(0)
    y = np.tile([0.0, 1.0], 100)
    noise = rng.normal(size=200)
    cases = np.array([f"t/{i}" for i in range(200)])
    baseline = {"case_id": cases, "label": y, "p": 1 / (1 + np.exp(-noise)), "own_image": noise}
    good = 3.0 * (y - 0.5) + noise
    variant = {
        "case_id": cases[::-1],  # another order: rows are matched by case
        "label": np.where(np.arange(200) < 10, np.nan, y)[::-1],  # 10 cases without a label
        "p": (1 / (1 + np.exp(-good)))[::-1],
        "own_image": good[::-1],
    }
    found = compare(variant, baseline, resamples=200, seed=0)
    assert found["n_cases"] == 190
    assert found["fused"]["low"] > 0.2 and found["own"]["image"]["low"] > 0.2


def test_pretraining_reads_the_best_epoch(tmp_path: Path) -> None:
    history = [
        {"epoch": e, "train_loss": 3.0, "held_out_loss": loss, "held_out_accuracy": 0.1, "seconds": 1.0}
        for e, loss in ((1, 3.4), (2, 3.1), (3, 3.3))
    ]
    record = {
        "method": "contrastive",
        "cases": {"train": 90, "held_out": 10, "unlabelled": 0},
        "pairs": {"image-text": {"train": 90, "held_out": 10}},
        "best_epoch": 2,
        "epochs_run": 3,
        "stopped": "early_stopping",
        "history": history,
    }
    (tmp_path / "training.json").write_text(json.dumps({"pretrain": record}))
    found = pretraining(tmp_path)
    assert found is not None and found["held_out_loss_best"] == 3.1 and found["pairs"] == {"image-text": 90}
    assert np.isnan(found["held_out_chance"])  # recorded only since the chance level exists
    (tmp_path / "training.json").write_text(json.dumps({"pretrain": None}))
    assert pretraining(tmp_path) is None
