"""The trainer: modality dropout, determinism, resuming a killed run, stopping on a diverging loss."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from mmdx.training.checkpoint import load_checkpoint, save_checkpoint
from mmdx.training.trainer import (
    TrainingDiverged,
    auxiliary_loss,
    balanced_pos_weight,
    modality_dropout,
    random_flip,
)
from mmdx.workflows.train import default_threads, train_run

REPO = Path(__file__).resolve().parents[2]


@settings(max_examples=100, deadline=None)
@given(
    presence=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=32),
    p=st.floats(min_value=0.0, max_value=0.99),
    seed=st.integers(0, 1000),
)
def test_modality_dropout_only_removes_and_never_empties(presence, p, seed) -> None:
    before = torch.tensor(presence, dtype=torch.bool)
    after = modality_dropout(before, p, torch.Generator().manual_seed(seed))
    assert not (after & ~before).any()  # nothing appears
    assert (after.sum(1) > 0)[before.sum(1) > 0].all()  # no case loses all its modalities


def test_modality_dropout_rate() -> None:
    before = torch.ones(20_000, 3, dtype=torch.bool)
    after = modality_dropout(before, 0.3, torch.Generator().manual_seed(0))
    assert 1 - after.float().mean().item() == pytest.approx(0.3 - 0.3**3, abs=0.01)


@pytest.mark.parametrize("shape", [(64, 1, 4, 5), (64, 1, 3, 4, 5)])
def test_random_flip_mirrors_whole_cases_along_each_axis(shape) -> None:
    image = torch.randn(shape)
    out = random_flip(image, 0.5, torch.Generator().manual_seed(0))
    spatial = tuple(range(2, len(shape)))
    seen = set()
    for case, flipped in zip(image, out, strict=True):
        # every output case is its input mirrored along some subset of the spatial axes
        matches = [
            axes
            for k in range(len(spatial) + 1)
            for axes in itertools.combinations(spatial, k)
            if torch.equal(case.flip([a - 1 for a in axes]) if axes else case, flipped)
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 2 ** len(spatial)  # with p = 0.5 and 64 cases every combination occurs
    assert torch.equal(random_flip(image, 0.0, torch.Generator()), image)
    again = random_flip(image, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again, out)  # seeded


def test_auxiliary_loss_ignores_absent_modalities() -> None:
    logits = torch.tensor([[5.0, -5.0, 1e6]])
    labels = torch.tensor([1.0])
    presence = torch.tensor([[True, False, False]])
    loss = auxiliary_loss(logits, labels, presence, torch.tensor(1.0))
    assert loss.item() == pytest.approx(torch.nn.functional.softplus(torch.tensor(-5.0)).item(), rel=1e-5)
    assert balanced_pos_weight(np.array([1, 0, 0, 0, np.nan])) == 3.0


def test_checkpoint_round_trip_and_damage_detection(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "history": "[]"}
    save_checkpoint(state, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["model"]["weight"], model.weight)
    fresh = torch.optim.AdamW(model.parameters())
    fresh.load_state_dict(loaded["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    data = (tmp_path / "ck.safetensors").read_bytes()
    (tmp_path / "ck.safetensors").write_bytes(data[:-10])
    assert load_checkpoint(tmp_path / "ck") is None  # a checkpoint cut short is never used


def _weights(run: Path) -> dict:
    return load_file(str(run / "bundle" / "model.safetensors"))


@pytest.mark.slow
def test_same_seed_same_model(small_cohort_2d: Path, tmp_path: Path, tiny_run: Path, tiny) -> None:
    _, tiny_config = tiny
    again = tmp_path / "again"
    train_run(tiny_config("train.epochs=2"), small_cohort_2d, again, progress=False)
    a, b = _weights(tiny_run), _weights(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((again / "training.json").read_text())["result"]["history"]
    assert len(history) == 2 and all(h["data_wait_share"] >= 0 for h in history)


@pytest.mark.slow
def test_loader_workers_prefetch_the_next_epoch_during_validation_without_changing_the_model(
    small_cohort_2d: Path, tmp_path: Path, tiny, monkeypatch
) -> None:
    _, tiny_config = tiny
    import mmdx.training.trainer as trainer_module

    seen: list[tuple[int, bool]] = []
    validate = trainer_module.Trainer._validate

    def recording(self):
        # the sampler already serves the next epoch, and the loader's workers hold its iterator
        seen.append((self.sampler.epoch, self.train_loader._iterator is not None))
        return validate(self)

    monkeypatch.setattr(trainer_module.Trainer, "_validate", recording)
    config = tiny_config("train.epochs=2", "data.loader.workers=2")
    train_run(config, small_cohort_2d, tmp_path / "prefetch", progress=False)
    assert seen == [(1, True), (1, True)]  # epoch 1 prefetches epoch 2; the last epoch prefetches nothing

    seen.clear()
    monkeypatch.setattr(trainer_module.Trainer, "prefetch_next_epoch", False)
    train_run(config, small_cohort_2d, tmp_path / "plain", progress=False)
    assert seen == [(0, True), (1, True)]
    a, b = _weights(tmp_path / "prefetch"), _weights(tmp_path / "plain")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(small_cohort_2d: Path, tmp_path: Path, tiny) -> None:
    TINY, tiny_config = tiny
    overrides = [*TINY, "train.epochs=4", "train.patience=10"]
    args = ["--config", str(REPO / "configs/demo.yaml"), "--cohort", str(small_cohort_2d), "--quiet"]
    for o in overrides:
        args += ["--set", o]
    reference = tmp_path / "reference"
    train_run(tiny_config("train.epochs=4", "train.patience=10"), small_cohort_2d, reference, progress=False)

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "pipelines.cli", "train", *args, "--out", str(killed)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = killed / "checkpoints" / "last.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if marker.is_file() and json.loads(marker.read_text())["state"]["__dict__"][0][1] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "bundle").exists()

    resumed = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(reference), _weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((killed / "training.json").read_text())["result"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_existing_run_needs_resume(tiny_run: Path, small_cohort_2d: Path, tiny) -> None:
    _, tiny_config = tiny
    from mmdx.errors import MmdxError

    with pytest.raises(MmdxError, match="--resume"):
        train_run(tiny_config(), small_cohort_2d, tiny_run, progress=False)


@pytest.mark.slow
def test_diverging_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(
    small_cohort_2d: Path, tmp_path: Path, monkeypatch, tiny
) -> None:
    _, tiny_config = tiny
    import mmdx.training.trainer as trainer_module

    calls = {"n": 0}
    original = torch.nn.functional.binary_cross_entropy_with_logits

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return (
            loss * float("nan") if calls["n"] > 9 else loss
        )  # diverge during the second epoch (7 steps each)

    monkeypatch.setattr(trainer_module.torch.nn.functional, "binary_cross_entropy_with_logits", poisoned)
    run = tmp_path / "diverged"
    with pytest.raises(TrainingDiverged, match="last good checkpoint \\(epoch 1\\)"):
        train_run(
            tiny_config("train.epochs=3", "train.aux_loss_weight=0"), small_cohort_2d, run, progress=False
        )
    assert load_checkpoint(run / "checkpoints" / "last")["epoch"] == 1


def test_default_threads_leave_half_the_cores(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_threads() == 8
    assert default_threads(world_size=4) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert default_threads() == 1 and default_threads(world_size=2) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_threads() == 1


def test_a_trained_bundle_anchors_its_calibration_to_the_development_class_rate(
    tiny_run: Path, small_cohort_2d: Path
) -> None:
    """``train.calibration_prevalence: development`` (the default): the mean calibrated probability on the
    validation split equals the share of positives among the labelled training and validation cases."""
    from mmdx.bundle import load_bundle
    from mmdx.predict import predictions_frame, prepare_inputs, run_predictions

    bundle = load_bundle(tiny_run / "bundle")
    assert bundle.calibration.method == "platt"
    inputs = prepare_inputs(bundle, small_cohort_2d, workers=1)
    predictions = predictions_frame(bundle, inputs, run_predictions(bundle, inputs))
    labelled = predictions[predictions["label"].notna()]
    development = labelled[labelled["split"].isin(["train", "val"])]
    assert bundle.calibration.prevalence_ == pytest.approx(development["label"].mean(), abs=1e-6)
    val = labelled[labelled["split"] == "val"]
    assert val["probability"].mean() == pytest.approx(bundle.calibration.prevalence_, abs=1e-4)
    assert val["label"].mean() != pytest.approx(bundle.calibration.prevalence_, abs=1e-3)  # a real anchor


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["joint", "staged"])
def test_the_group_lasso_shrinks_the_value_weights_of_the_linear_tabular_encoder(
    small_cohort_2d: Path, tmp_path: Path, tiny, strategy: str
) -> None:
    """Both training paths (the fused loss and the encoders' own stage) add the encoder's penalty."""
    _, tiny_config = tiny
    n_features = None
    norms = {}
    for strength in (0.0, 1.0):
        out = tmp_path / f"{strategy}-{strength}"
        config = tiny_config(
            "train.epochs=2",
            "train.lr=0.01",
            f"train.strategy={strategy}",
            f"model.tabular={{name: linear, dim: 16, group_lasso: {strength}}}",
        )
        train_run(config, small_cohort_2d, out, progress=False)
        preprocessing = json.loads((out / "bundle" / "preprocessing.json").read_text())
        n_features = len(preprocessing["features"]) + len(preprocessing["numeric_columns"])
        weight = _weights(out)["encoders.tabular.linear.weight"]
        values, missing = weight[:, :n_features], weight[:, n_features : 2 * n_features]
        norms[strength] = torch.sqrt(values.pow(2).sum(0) + missing.pow(2).sum(0))
    # the same seed starts both runs from the same weights; the penalty pulls every feature's group down
    assert norms[1.0].mean() < 0.75 * norms[0.0].mean()
    assert (norms[1.0] < norms[0.0]).float().mean() > 0.9


def test_the_run_states_how_precisely_its_validation_split_fixes_the_calibration_slope(
    tiny_run: Path,
) -> None:
    """The slope of the calibrated probabilities on the validation split, with its bootstrap interval, is in
    training.json and the model card; a split as small as this one's cannot fix it to 0.9-1.1, and says so."""
    import json

    from mmdx.bundle import load_bundle
    from mmdx.predict import predictions_frame, prepare_inputs, run_predictions
    from mmdx.statistics import calibration_slope_intercept

    summary = json.loads((tiny_run / "training.json").read_text())
    slope = summary["val"]["calibration_slope"]
    assert slope["n"] == summary["val"]["n"] and slope["low"] < slope["high"]
    bundle = load_bundle(tiny_run / "bundle")
    assert bundle.card["metrics"]["val"]["calibration_slope"] == slope
    cohort = Path(summary["cohort"])
    inputs = prepare_inputs(bundle, cohort, workers=1)
    frame = predictions_frame(bundle, inputs, run_predictions(bundle, inputs))
    val = frame[(frame["split"] == "val") & frame["label"].notna()]
    fitted = calibration_slope_intercept(val["label"].to_numpy(int), val["probability"].to_numpy()).slope
    assert slope["estimate"] == pytest.approx(fitted, abs=1e-3)
    assert any("fixes the calibration slope only to within" in w for w in summary["warnings"])
    assert any("fixes the calibration slope" in w for w in bundle.card["warnings"])


def test_a_model_the_config_cannot_build_fails_before_any_image_is_cached(
    small_cohort_2d: Path, tmp_path: Path, tiny, monkeypatch
) -> None:
    from mmdx.data.dataset import ImageCache
    from mmdx.errors import MmdxError

    _, tiny_config = tiny
    warmed: list[int] = []
    monkeypatch.setattr(ImageCache, "warm", lambda self, *a, **k: warmed.append(1))
    with pytest.raises(MmdxError, match="unknown image encoder 'resnet99'"):
        train_run(tiny_config("model.image.name=resnet99"), small_cohort_2d, tmp_path / "bad", progress=False)
    assert warmed == []
