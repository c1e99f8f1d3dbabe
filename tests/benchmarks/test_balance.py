"""The strategies benchmark: its variants map to config overrides, and the calibration reference."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.balance import own_vs_joint, reference_ece, variant_overrides
from mmdx.errors import MmdxError


def test_variants_are_registry_names_or_train_settings() -> None:
    assert variant_overrides("staged", "concat") == ["model.fusion.name=concat", "train.strategy=staged"]
    assert "train.early_stopping=branches" in variant_overrides("branch_stopping", "gated_attention")
    staged_augment = variant_overrides("staged_augment", "gated_attention")
    assert "train.strategy=staged" in staged_augment and "train.augment.affine=0.5" in staged_augment
    contrastive = variant_overrides("staged_augment_contrastive", "gated_attention")
    assert {"train.strategy=staged", "train.augment.affine=0.5", "train.pretrain=contrastive"} <= set(
        contrastive
    )
    assert variant_overrides("contrastive", "concat")[1:] == [
        "train.strategy=joint",
        "train.pretrain=contrastive",
    ]
    assert variant_overrides("unimodal-image", "concat")[1:] == ["model.tabular=null", "model.text=null"]
    with pytest.raises(MmdxError):
        variant_overrides("stagd", "concat")


def test_reference_ece_shrinks_with_the_number_of_cases() -> None:
    rng = np.random.default_rng(0)
    small = reference_ece(rng.random(100), draws=100)
    large = reference_ece(rng.random(5000), draws=100)
    assert small["low"] <= small["mean"] <= small["high"]
    assert large["mean"] < small["mean"] / 3  # the noise floor of a perfectly calibrated model falls with n


def test_outputs_cached_outside_the_run_one_file_per_cohort(tmp_path, monkeypatch):
    from benchmarks import balance

    calls = []

    def fake_outputs(bundle, test):
        calls.append(test.name)
        return {"case_id": np.array([f"{test.name}/C1"]), "label": np.array([1.0]), "p": np.array([0.7])}

    monkeypatch.setattr(balance, "cohort_outputs", fake_outputs)
    monkeypatch.setattr("mmdx.bundle.load_bundle", lambda path: object())
    run, cache = tmp_path / "run-seed0", tmp_path / "cache"
    run.mkdir()
    tests = [tmp_path / "first", tmp_path / "second"]
    out = balance.test_outputs(run, tests, cache)
    assert out["case_id"].tolist() == ["first/C1", "second/C1"] and calls == ["first", "second"]
    assert sorted(p.name for p in (cache / run.name).iterdir()) == ["first.npz", "second.npz"]
    assert not any(run.iterdir())  # the run folder is read, never written
    (cache / run.name / "second.npz").unlink()
    again = balance.test_outputs(run, tests, cache)
    assert calls == ["first", "second", "second"]  # only the missing cohort is predicted again
    np.testing.assert_array_equal(again["p"], out["p"])


def test_cross_validated_differences_pair_each_variant_with_joint_per_seed_and_on_average(tmp_path) -> None:
    from benchmarks.balance import cross_validated_differences
    from mmdx.run import RunPaths
    from mmdx.training.cross_fit import OutOfFold

    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.4).astype(float)
    ids = [f"c{i}" for i in range(300)]
    runs = {}
    for seed in (0, 1):
        for strategy, noise in (("joint", 2.0), ("staged", 0.3)):
            run = RunPaths(tmp_path / f"{strategy}{seed}").create()
            logits = labels + rng.normal(0, noise, 300) + 5.0 * (np.arange(300) % 5)  # an offset per fold
            record = OutOfFold(5, ids, np.arange(300) % 5, logits, labels, [1] * 5, [1.0] * 5)
            run.write_out_of_fold(record.to_dict())
            runs[(strategy, "gated_attention", seed)] = run.root
    runs[("augment", "gated_attention", 0)] = RunPaths(tmp_path / "none").create().root  # no folds
    diffs = cross_validated_differences(runs, resamples=200)
    assert set(diffs) == {
        "staged-gated_attention-seed0", "staged-gated_attention-seed1", "staged-gated_attention-seeds0,1",
    }  # fmt: skip
    for diff in diffs.values():
        assert diff["n"] == 300 and 0.2 < diff["low"] < diff["estimate"] < diff["high"]
    mean = diffs["staged-gated_attention-seeds0,1"]["estimate"]
    seeds = [diffs[f"staged-gated_attention-seed{s}"]["estimate"] for s in (0, 1)]
    assert mean == pytest.approx(sum(seeds) / 2)
    # another baseline: the comparisons turn round
    against_staged = cross_validated_differences(runs, resamples=200, baseline="staged")
    assert set(against_staged) == {
        "joint-gated_attention-seed0", "joint-gated_attention-seed1", "joint-gated_attention-seeds0,1",
    }  # fmt: skip
    assert against_staged["joint-gated_attention-seed0"]["estimate"] == pytest.approx(-seeds[0])


def test_own_auroc_against_joint_is_paired_on_the_cases_with_the_modality() -> None:
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 100)
    noise = rng.normal(size=200)
    better = np.where(np.arange(200) < 150, 3.0 * (y - 0.5) + noise, np.nan)  # 50 cases lack the image
    joint = np.where(np.arange(200) < 150, noise, np.nan)
    own = {
        ("joint", "concat", 0): {"image": joint, "text": noise},
        ("contrastive", "concat", 0): {"image": better, "text": noise},
        ("contrastive", "concat", 1): {"image": better},  # no joint run of this seed: not compared
    }
    found = own_vs_joint(own, y, resamples=200)
    assert set(found) == {"contrastive-concat-seed0"}
    image, text = found["contrastive-concat-seed0"]["image"], found["contrastive-concat-seed0"]["text"]
    assert image["low"] > 0.3 and text["estimate"] == 0.0


def test_seed_mean_auroc_averages_the_seeds_with_one_bootstrap_for_all() -> None:
    from benchmarks.balance import seed_mean_auroc
    from mmdx.metrics import auroc

    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.35).astype(int)
    probability = {
        ("staged", "gated_attention", s): 1 / (1 + np.exp(-(2 * y + rng.normal(0, 1.5, 400))))
        for s in (0, 1, 2)
    }
    probability[("joint", "gated_attention", 0)] = rng.random(400)  # one seed only: no mean
    found = seed_mean_auroc(probability, y, resamples=300)
    assert set(found) == {"staged-gated_attention"} and found["staged-gated_attention"]["seeds"] == 3
    mean = found["staged-gated_attention"]
    expected = np.mean([auroc(y, probability[("staged", "gated_attention", s)]) for s in (0, 1, 2)])
    assert mean["estimate"] == pytest.approx(expected) and mean["low"] < expected < mean["high"]
    assert 0.02 < mean["high"] - mean["low"] < 0.2


def test_a_run_trained_with_mmdx_train_states_its_training_time_from_its_model_card(tmp_path) -> None:
    import json

    from benchmarks.balance import score_run

    run = tmp_path / "run"
    (run / "bundle").mkdir(parents=True)
    result = {"best_val_auroc": 0.8, "epochs_run": 3, "best_epoch": 2, "branches": {}}
    (run / "training.json").write_text(json.dumps({"result": result}))
    (run / "bundle" / "card.json").write_text(json.dumps({"training": {"seconds": 123.4}}))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    out = {"case_id": np.array([f"c{i}" for i in range(60)]), "p": rng.random(60)}
    cases = out["case_id"][::-1]
    assert score_run(run, out, cases, y, resamples=20)["train_seconds"] == 123.4
    (run / "benchmark_seconds.json").write_text(
        json.dumps({"seconds": 99.0})
    )  # a benchmark's own timing wins
    assert score_run(run, out, cases, y, resamples=20)["train_seconds"] == 99.0
