"""Training strategies: the registry, gradient modulation, the parameter groups of the fusion stage, staged
training end to end, and early stopping that waits for the encoders' own heads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES
from mmdx.models.classifier import build_model
from mmdx.training.inference import Predictions, branch_aurocs
from mmdx.training.strategies import STRATEGIES, GradientModulation, encoder_parameter_groups
from mmdx.workflows.train import train_run

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def test_registry_holds_the_strategies_and_names_the_choices() -> None:
    assert {"joint", "staged", "ogm_ge"} <= set(STRATEGIES.names())
    assert STRATEGIES.get("staged").branch_heads and not STRATEGIES.get("joint").branch_heads
    with pytest.raises(MmdxError, match="staged"):
        STRATEGIES.get("stagd")


def test_modulation_slows_only_the_modality_ahead() -> None:
    hook = GradientModulation(alpha=0.5)
    k = hook.modulation({"image": 0.5, "tabular": 0.9, "text": 0.7})
    rho = 0.9 / ((0.5 + 0.7) / 2)
    assert k["tabular"] == pytest.approx(1 - math.tanh(0.5 * rho))
    assert k["image"] == 1.0  # behind the others: untouched
    assert hook.modulation({"image": 0.8}) == {"image": 1.0}  # a single modality has nothing to balance


def _tiny_model() -> torch.nn.Module:
    return build_model(
        image={"name": "small_cnn", "spatial_dims": 2, "channels": [4, 8], "out_dim": 8},
        tabular={"name": "mlp", "n_features": 3, "dim": 8, "hidden_dim": 8},
        fusion={"name": "concat", "dim": 8},
        aux_heads=True,
    )


def test_modulation_scales_the_dominant_encoders_gradient() -> None:
    model = _tiny_model()
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    aux = torch.zeros(4, len(MODALITIES))
    aux[:, MODALITIES.index("tabular")] = torch.tensor([4.0, -4.0, 4.0, -4.0])  # confident and right
    presence = torch.zeros(4, len(MODALITIES), dtype=torch.bool)
    presence[:, [MODALITIES.index("image"), MODALITIES.index("tabular")]] = True
    output = type("Out", (), {"aux_logits": aux})()
    GradientModulation(alpha=0.5, noise=False)(
        model, output, {"presence": presence}, labels, torch.Generator().manual_seed(0)
    )
    tabular = [p.grad for p in model.encoders["tabular"].parameters()]
    image = [p.grad for p in model.encoders["image"].parameters()]
    assert all(torch.all(g < 1.0) and torch.all(g > 0.0) for g in tabular)
    assert all(torch.equal(g, torch.ones_like(g)) for g in image)


def test_fusion_stage_groups_put_encoders_and_heads_at_the_lower_rate() -> None:
    model = _tiny_model()
    fusion, branch = encoder_parameter_groups(model, 0.1)
    assert branch["lr_scale"] == 0.1 and fusion["lr_scale"] == 1.0
    ids = {id(p) for p in branch["params"]}
    assert ids == {id(p) for n, p in model.named_parameters() if n.startswith(("encoders.", "aux_heads."))}
    assert len(fusion["params"]) + len(branch["params"]) == len(list(model.parameters()))


def test_branch_aurocs_score_each_head_on_the_cases_that_have_its_modality() -> None:
    labels = np.array([1.0, 0.0, 1.0, 0.0, np.nan])
    aux = np.zeros((5, len(MODALITIES)))
    aux[:, 0] = [3.0, -3.0, 2.0, -2.0, 0.0]  # perfect image head
    aux[:, 1] = [-1.0, 1.0, 1.0, -1.0, 0.0]  # a coin-flip tabular head
    presence = np.ones((5, len(MODALITIES)), dtype=bool)
    presence[:, 2] = False  # nobody has text
    predictions = Predictions(
        ["a", "b", "c", "d", "e"], labels, np.zeros(5), aux * 0, presence, aux_logits=aux
    )
    scores = branch_aurocs(predictions)
    assert scores == {"image": 1.0, "tabular": 0.5}
    assert branch_aurocs(Predictions([], labels, np.zeros(5), aux, presence)) == {}


@pytest.mark.slow
def test_staged_trains_each_encoder_then_the_fusion(small_cohort_2d: Path, tmp_path: Path, tiny) -> None:
    _, tiny_config = tiny
    config = tiny_config(
        "train.strategy=staged", "train.epochs=2", "train.staged.branch_epochs=2", "train.min_epochs=1"
    )
    result = train_run(config, small_cohort_2d, tmp_path / "staged", progress=False)
    stages = [(h.stage, h.epoch) for h in result.fit.history]
    assert stages == [("branches", 1), ("branches", 2), ("fused", 1), ("fused", 2)]
    assert all(set(h.branch_val_auroc) == {"image", "tabular", "text"} for h in result.fit.history)
    assert result.fit.strategy == "staged" and set(result.fit.branches) == {"image", "tabular", "text"}
    assert (tmp_path / "staged" / "checkpoints" / "branches.safetensors").is_file()
    card = json.loads((tmp_path / "staged" / "bundle" / "card.json").read_text())
    assert card["training"]["strategy"] == "staged"
    for branch in card["training"]["branches"].values():
        assert 0.0 <= branch["own_val_auroc"] <= 1.0 and branch["val_auroc_lost_when_removed"] is not None


@pytest.mark.slow
def test_branch_early_stopping_waits_while_an_encoder_improves(
    small_cohort_2d: Path, tmp_path: Path, tiny, monkeypatch
) -> None:
    _, tiny_config = tiny
    import mmdx.training.trainer as trainer_module

    scores = iter([0.6, 0.61, 0.62, 0.63, 0.64, 0.65] * 4)

    def fixed(self):  # the fused score never improves, the image head's own score always does
        return 0.7, 0.5, {"image": next(scores)}

    monkeypatch.setattr(trainer_module.Trainer, "_validate", fixed)
    base = ("train.epochs=4", "train.patience=1", "train.min_epochs=1")
    fused = train_run(tiny_config(*base), small_cohort_2d, tmp_path / "fused", progress=False)
    assert fused.fit.epochs_run == 2 and fused.fit.stopped == "early_stopping"
    config = tiny_config(*base, "train.early_stopping=branches")
    waited = train_run(config, small_cohort_2d, tmp_path / "branches", progress=False)
    assert waited.fit.epochs_run == 4 and waited.fit.stopped == "epochs" and waited.fit.best_epoch == 1


def test_an_unknown_strategy_fails_before_training(small_cohort_2d: Path, tmp_path: Path, tiny) -> None:
    _, tiny_config = tiny
    with pytest.raises(MmdxError, match="joint"):
        train_run(tiny_config("train.strategy=jont"), small_cohort_2d, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_demo_default_trains_staged_with_augmentation_within_train_epochs(
    small_cohort_2d: Path, tmp_path: Path, tiny
) -> None:
    from mmdx.config import load_config

    overrides, _ = tiny
    shrunk = [o for o in overrides if not o.startswith(("train.strategy", "train.augment"))]
    config = load_config(DEMO, [*shrunk, "train.epochs=2", "train.min_epochs=1"])
    assert config.train.strategy == "staged" and config.train.augment.enabled
    assert config.train.staged.branch_epochs > 2
    result = train_run(config, small_cohort_2d, tmp_path / "demo", progress=False)
    stages = [h.stage for h in result.fit.history]
    assert (
        stages.count("branches") == 2 and 1 <= stages.count("fused") <= 2
    )  # train.epochs bounds both stages
    assert result.fit.strategy == "staged"


@pytest.mark.slow
@pytest.mark.parametrize("wait", [True, False])
def test_an_encoder_at_chance_is_not_stopped_before_it_learns(
    small_cohort_2d: Path, tmp_path: Path, tiny, monkeypatch, caplog, wait: bool
) -> None:
    """The staged strategy's patience counts for an encoder only once its own validation AUROC is above
    chance on its validation cases (about 0.75 on the ~24 of this cohort): an image head stuck at 0.6
    trains on, the others stop after their patience."""
    import logging

    import mmdx.training.staged as staged

    _, tiny_config = tiny
    monkeypatch.setattr(staged, "branch_aurocs", lambda preds: {"image": 0.6, "tabular": 0.9, "text": 0.9})
    config = tiny_config(
        "train.strategy=staged",
        "train.epochs=4",
        "train.staged.branch_epochs=4",
        "train.staged.branch_patience=1",
        "train.min_epochs=1",
        f"train.staged.wait_for_signal={str(wait).lower()}",
    )
    with caplog.at_level(logging.INFO, logger="mmdx.training.staged"):
        train_run(config, small_cohort_2d, tmp_path / "run", progress=False)
    stops = {
        r.getMessage().split()[0]: r.getMessage() for r in caplog.records if "stops after" in r.getMessage()
    }
    assert "stops after epoch 2" in stops["tabular"] and "stops after epoch 2" in stops["text"]
    if wait:
        assert "image" not in stops  # trained to the end of the stage
    else:
        assert "stops after epoch 2" in stops["image"]


def test_chance_auroc_is_the_upper_quantile_of_auroc_without_signal() -> None:
    from mmdx.metrics import auroc
    from mmdx.statistics import chance_auroc

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(40), np.zeros(80)]
    null = [auroc(labels, rng.uniform(size=labels.size)) for _ in range(4000)]
    assert chance_auroc(40, 80) == pytest.approx(np.quantile(null, 0.975), abs=0.01)
    assert chance_auroc(98, 211) == pytest.approx(0.569, abs=0.001)
    assert math.isnan(chance_auroc(0, 10))
