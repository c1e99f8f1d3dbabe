"""Deletion curves, model randomisation and convergence summaries behave as their definitions say."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mmdx.explain.attribution import explain
from mmdx.explain.faithfulness import (
    RandomisationResult,
    anatomy_score,
    convergence_summary,
    deletion_curves,
    randomisation_check,
    randomised_copy,
)
from mmdx.explain.inputs import ExplainInputs
from mmdx.keys import Keys

from .toys import linear_model, random_batch, tiny_model

WEIGHTS = torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.25, 0.1, -0.5, -1.0])


def linear_tabular_cases(n: int = 4):
    """Only tabular, logit = 0.3 + w . x with every value 1: the most useful features are known."""
    model = linear_model(None, WEIGHTS, None, text=None)
    presence = torch.tensor([[False, True, False]] * n)
    batch = random_batch(n, 0, n_features=len(WEIGHTS), cardinalities=(), presence=presence)
    batch[Keys.TABULAR] = torch.ones(n, len(WEIGHTS))
    batch[Keys.TABULAR_MISSING] = torch.zeros(n, len(WEIGHTS))
    return model, ExplainInputs.from_batch(batch)


def test_deletion_by_integrated_gradients_beats_random_on_a_known_linear_model():
    model, inputs = linear_tabular_cases()
    explanations = explain(model, inputs, n_steps=4)
    np.testing.assert_allclose(explanations[0].tabular_attributions, WEIGHTS.numpy(), atol=1e-6)
    curves = deletion_curves(model, inputs, explanations, seed=3)["tabular"]
    ours, chance = curves.auc()
    assert np.all(ours < chance)
    # removing the largest contributions first is optimal for an additive model: pointwise below random
    assert np.all(curves.attribution <= curves.random + 1e-9)
    assert np.all(np.diff(curves.attribution[:, :8], axis=1) <= 1e-12)  # positives go first: falling
    # both orders start from the prediction and end at the all-baseline prediction
    probability = torch.sigmoid(model(inputs.batch).logits).detach().numpy()
    np.testing.assert_allclose(curves.attribution[:, 0], probability, atol=1e-6)
    np.testing.assert_allclose(curves.attribution[:, -1], curves.random[:, -1], atol=1e-9)
    np.testing.assert_allclose(curves.attribution[:, -1], 1 / (1 + np.exp(-0.3)), atol=1e-6)
    summary = curves.summary()
    assert summary["auc_difference"] > 0 and summary["share_faster_than_random"] == 1.0


def test_reversed_attributions_do_worse_than_random():
    model, inputs = linear_tabular_cases()
    explanations = explain(model, inputs, n_steps=4)
    reversed_ = [replace(e, tabular_attributions=-e.tabular_attributions) for e in explanations]
    ours, chance = deletion_curves(model, inputs, reversed_, seed=3)["tabular"].auc()
    assert np.all(ours > chance)


def test_deletion_curves_of_every_modality_of_a_real_model():
    model = tiny_model("gated_attention", seed=1)
    presence = torch.tensor([[True, True, True], [False, True, True], [True, False, True]])
    inputs = ExplainInputs.from_batch(random_batch(3, 2, presence=presence))
    explanations = explain(model, inputs, n_steps=8)
    curves = deletion_curves(model, inputs, explanations, fractions=(0.0, 0.5, 1.0))
    assert curves["image"].case_ids == ["case0", "case2"]
    assert curves["tabular"].case_ids == ["case0", "case1"]
    assert curves["text"].attribution.shape == (3, 3)
    for curve in curves.values():
        np.testing.assert_allclose(curve.attribution[:, 0], curve.random[:, 0])
        np.testing.assert_allclose(curve.attribution[:, -1], curve.random[:, -1], atol=1e-7)
        assert np.all((curve.attribution >= 0) & (curve.attribution <= 1))


def test_randomised_copy_redraws_every_weight_and_leaves_the_model_alone():
    model = tiny_model("gated_attention", seed=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clone = randomised_copy(model, seed=1)
    for name, parameter in clone.named_parameters():
        original = dict(model.named_parameters())[name]
        if float(original.detach().std() if original.numel() > 1 else 1.0) > 0:
            assert not torch.equal(parameter, original), name
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    batch = random_batch(2, 1)
    assert not torch.allclose(clone(batch).logits, model(batch).logits)
    torch.testing.assert_close(randomised_copy(model, seed=1)(batch).logits, clone(batch).logits)


def test_randomisation_changes_the_attributions():
    model = tiny_model("gated_attention", seed=4)
    inputs = ExplainInputs.from_batch(random_batch(4, 5))
    explanations = explain(model, inputs, n_steps=8)
    result = randomisation_check(model, inputs, explanations, seed=2, n_steps=8)
    summary = result.summary()
    for modality in ("image", "tabular", "text"):
        values = np.asarray(result.absolute[modality])
        assert values.size >= 3 and np.all(np.abs(values) <= 1.0)
    assert summary["text"]["spearman_abs_mean"] < 0.8
    assert summary["tabular"]["spearman_abs_mean"] < 0.8
    # the anatomy score is measured for both models, and each modality says whether it passed
    assert len(result.anatomy_trained) == len(result.anatomy_randomised) == 4
    assert summary["image"]["anatomy_trained_mean"] is not None
    assert summary["text"]["passed"] == (abs(summary["text"]["spearman_abs_mean"]) < 0.2)


def test_randomisation_redraws_the_image_map_with_the_same_image_method():
    model = tiny_model("gated_attention", seed=4)
    inputs = ExplainInputs.from_batch(random_batch(3, 5))
    explanations = explain(model, inputs, n_steps=4, image_method="gradcam")
    same = randomisation_check(model, inputs, explanations, n_steps=4)
    plain_ig = randomisation_check(model, inputs, explain(model, inputs, n_steps=4), n_steps=4)
    assert same.absolute["image"] != plain_ig.absolute["image"]
    assert same.absolute["tabular"] == pytest.approx(plain_ig.absolute["tabular"])


def test_anatomy_score_is_one_for_a_map_that_copies_the_image_and_ignores_the_sign():
    image = np.random.default_rng(0).random((1, 8, 8))
    assert anatomy_score(image[0], image) == pytest.approx(1.0)
    assert anatomy_score(-image[0], image) == pytest.approx(1.0)
    assert anatomy_score(np.zeros((8, 8)), image) is None


def test_a_model_randomisation_cannot_touch_keeps_its_attributions():
    # constant weights are left alone by the re-initialisation: the check must then report agreement
    model = linear_model(None, torch.full((10,), 2.0), None, text=None)
    _, inputs = linear_tabular_cases()
    inputs.tabular = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    explanations = explain(model, inputs, n_steps=4)
    result = randomisation_check(model, inputs, explanations, n_steps=4)
    assert result.absolute["tabular"] == pytest.approx([1.0] * 4)


def test_convergence_summary():
    model = tiny_model("late", seed=0)
    explanations = explain(model, ExplainInputs.from_batch(random_batch(3, 0)), n_steps=4)
    summary = convergence_summary(explanations)
    deltas = np.abs([e.convergence_delta for e in explanations])
    assert summary["n_cases"] == 3
    assert summary["abs_max"] == pytest.approx(deltas.max())
    assert summary["abs_median"] == pytest.approx(np.median(deltas))
    occlusion = explain(model, ExplainInputs.from_batch(random_batch(2, 0)), method="occlusion")
    assert convergence_summary(occlusion) == {"n_cases": 0}


def test_bootstrap_mean_gives_an_interval_around_the_mean_that_narrows_with_more_cases():
    from mmdx.explain.faithfulness import bootstrap_mean

    rng = np.random.default_rng(0)
    few, many = rng.normal(0.1, 0.2, 12), rng.normal(0.1, 0.2, 1200)
    small, large = bootstrap_mean(list(few)), bootstrap_mean([*many, None])
    assert small["low"] < small["mean"] < small["high"] and small["n"] == 12
    assert large["n"] == 1200 and large["low"] < 0.1 < large["high"]
    assert large["high"] - large["low"] < (small["high"] - small["low"]) / 5
    assert bootstrap_mean([None]) == {"mean": None, "low": None, "high": None, "n": 0}


def test_the_randomisation_verdict_needs_the_whole_interval_on_one_side():
    from mmdx.explain.faithfulness import randomisation_verdict

    assert randomisation_verdict(-0.05, 0.15) == "passed"
    assert randomisation_verdict(-0.19, 0.19) == "passed"
    assert randomisation_verdict(0.05, 0.25) == "not resolved"
    assert randomisation_verdict(-0.25, -0.1) == "not resolved"
    assert randomisation_verdict(0.2, 0.4) == "failed" and randomisation_verdict(-0.5, -0.2) == "failed"
    assert randomisation_verdict(None, 0.1) is None


def test_the_randomisation_summary_states_the_interval_and_its_verdict():
    result = RandomisationResult(
        absolute={"image": [0.11, 0.31, 0.21, 0.26, 0.16] * 2, "text": []},
        signed={"image": [0.0] * 10, "text": []},
        seed=0,
    )
    image = result.summary()["image"]
    low, high = image["spearman_abs_interval"]
    assert image["spearman_abs_mean"] == pytest.approx(0.21) and low < 0.2 < 0.21 < high
    # the mean is just over the threshold: its point verdict fails, and the interval cannot tell
    assert image["passed"] is False and image["verdict"] == "not resolved"
    assert result.summary()["text"]["spearman_abs_interval"] is None
    assert result.summary()["text"]["verdict"] is None
