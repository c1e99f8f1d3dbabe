"""The other-field-of-view balance benchmark: verdicts, the peer's predictions on extra cohorts, own heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.fov_balance import (
    Scored,
    combined_verdict,
    interval_verdict,
    own_head_comparisons,
    peer_probabilities,
    target_rows,
)


@pytest.mark.parametrize(
    ("low", "high", "bounds", "verdict"),
    [
        (0.03, 0.05, (0.02, None), "met"),
        (0.01, 0.05, (0.02, None), "not resolved"),  # the interval includes the boundary
        (-0.01, 0.015, (0.02, None), "not met"),
        (0.95, 1.05, (0.9, 1.1), "met"),
        (0.85, 1.05, (0.9, 1.1), "not resolved"),
        (1.12, 1.3, (0.9, 1.1), "not met"),
        (-0.2, -0.15, (-0.1, 0.1), "not met"),
    ],
)
def test_a_verdict_is_met_only_when_the_whole_interval_is_inside_the_target(low, high, bounds, verdict):
    assert interval_verdict(low, high, *bounds) == verdict


def test_seeds_combine_to_met_only_when_every_seed_is_met():
    assert combined_verdict(["met", "met"]) == "met"
    assert combined_verdict(["met", "not resolved"]) == "not resolved"
    assert combined_verdict(["met", "not resolved", "not met"]) == "not met"
    assert combined_verdict([]) == "not run"


def _cohort(root: Path, name: str, ids: list[str]) -> Path:
    cohort = root / name
    (cohort / "ground_truth").mkdir(parents=True)
    lines = [f'{{"case_id": "{c}", "logit_terms": {{"prior": 0.0, "image": 0.1}}}}' for c in ids]
    (cohort / "ground_truth" / "truth.jsonl").write_text("\n".join(lines) + "\n")
    return cohort


def test_peer_predictions_are_read_per_cohort_and_keyed_like_mmdx_outputs(tmp_path):
    tests = [_cohort(tmp_path, "a", ["C1", "C2"]), _cohort(tmp_path, "b", ["C1"])]
    folder = tmp_path / "peers" / "records" / "haim" / "seed0"
    folder.mkdir(parents=True)
    pd.DataFrame({"case_id": ["C1", "C2"], "label": [1, 0], "probability": [0.9, 0.2]}).to_csv(
        folder / "predictions_a.csv", index=False
    )
    assert peer_probabilities(tmp_path / "peers", "haim", 0, tests) is None  # cohort b not scored
    pd.DataFrame({"case_id": ["C1"], "label": [0], "probability": [0.4]}).to_csv(
        folder / "predictions_b.csv", index=False
    )
    series = peer_probabilities(tmp_path / "peers", "haim", 0, tests)
    assert series.to_dict() == {"a/C1": 0.9, "a/C2": 0.2, "b/C1": 0.4}


def test_own_heads_are_compared_on_the_cases_that_have_the_modality(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    ids = [f"C{i:03d}" for i in range(n)]
    test = _cohort(tmp_path, "t", ids)
    y = rng.integers(0, 2, n).astype(float)
    signal = y + rng.normal(0, 1.0, n)
    own = signal.copy()
    own[:100] = np.nan  # 100 cases without the modality: the head has no output there
    cases = np.array([f"t/{c}" for c in ids])
    fused = {0: {"case_id": cases, "label": y, "p": 1 / (1 + np.exp(-signal)), "own_tabular": own}}
    scored = Scored(fused, [test], [])
    # a reference that is the head itself on the cases with the modality, noise where it has none
    reference_p = np.where(np.isnan(own), rng.random(n), 1 / (1 + np.exp(-signal)))
    references = {"tabular": {0: {"case_id": cases, "label": y, "p": reference_p}}}
    found = own_head_comparisons(scored, references, resamples=200)["tabular"]
    assert found["n_cases"] == 300
    difference = found["differences"]["0"]
    assert difference["estimate"] == pytest.approx(0.0, abs=1e-12) and difference["n_cases"] == 300


def _iv(estimate: float, low: float, high: float, n: int = 900) -> dict:
    return {"estimate": estimate, "low": low, "high": high, "n_cases": n}


def test_the_targets_table_lets_the_seed_mean_decide_and_says_what_was_not_run():
    calibration = {
        "0": {
            "slope": _iv(1.0, 0.95, 1.05),
            "intercept": _iv(-0.3, -0.4, -0.2),
            "ece": 0.05,
            "ece_reference": {"mean": 0.01, "low": 0.005, "high": 0.015},
        }
    }
    results = {
        "image_loss": {
            "0": _iv(0.05, 0.03, 0.07),
            "1": _iv(0.01, -0.01, 0.03),
            "mean": _iv(0.03, 0.021, 0.04),
        },
        "fused_minus_peer": {},
        "own_head": {"mmdx": {"image": {"differences": {"0": _iv(-0.02, -0.04, 0.0)}, "n_cases": 700}}},
        "calibration": calibration,
        "gated_minus_concat": {},
        "settings": {"peer": "haim"},
        "n_cases": 900,
    }
    rows = {row[0].split(".")[0]: row for row in target_rows(results)}
    assert rows["1"][1].startswith("seed mean +0.030") and rows["1"][3] == "met"  # the mean decides
    assert rows["2"][1:] == ("peer not scored", "-", "not run")
    own = next(r for r in target_rows(results) if r[0].startswith("3."))
    assert own[1] == "seed 0 -0.020 [-0.040, +0.000]" and own[2] == "700" and own[3] == "not resolved"
    verdicts = [r[3] for r in target_rows(results) if r[0].startswith("4. calibration")]
    assert verdicts == ["met", "not met"]
    assert rows["5"][3] == "not run"


def test_concat_models_share_the_strategy_the_fused_models_were_trained_with(tmp_path: Path) -> None:
    import argparse

    from benchmarks.fov_balance import REPO, concat_run, fused_strategy

    config = REPO / "configs" / "ct3d.yaml"
    # no fused bundle yet: the config's own strategy
    assert fused_strategy(tmp_path, [0, 1], config) == "staged"
    bundle = tmp_path / "planned-fused-seed1" / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "config.yaml").write_text("train:\n  strategy: joint\n", encoding="utf-8")
    assert fused_strategy(tmp_path, [0, 1], config) == "joint"
    args = argparse.Namespace(out=tmp_path, strategy="joint")
    assert concat_run(args, 2) == tmp_path / "runs" / "joint-concat-seed2"
