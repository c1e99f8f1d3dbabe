"""Properties of ``explain``: exactness on a linear model, completeness, masking, occlusion, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmdx.data.note_spans import content_positions
from mmdx.data.text import encode_notes, train_note_tokenizer
from mmdx.errors import MmdxError
from mmdx.explain.attribution import explain
from mmdx.explain.grids import ImageGrid
from mmdx.explain.inputs import ExplainInputs, FeatureInfo, make_baselines
from mmdx.keys import MODALITIES, Keys, Modality

from .toys import linear_model, random_batch, tiny_model

WEIGHT = torch.tensor([2.0, -1.0, 0.5, 3.0, -2.5, 1.5])
TABLE = torch.tensor([[0.0, 0.7, -0.4]])  # one categorical column with 3 indices


def linear_case(batch: int = 3, seed: int = 0):
    model = linear_model((8, 8), WEIGHT, TABLE, text=(30, 4, 12), seed=seed)
    data = random_batch(batch, seed, image_shape=(8, 8), cardinalities=(3,), vocab_size=30, length=12)
    return model, ExplainInputs.from_batch(data)


def test_integrated_gradients_is_exact_on_a_linear_model():
    model, inputs = linear_case()
    explanations = explain(model, inputs, n_steps=4)
    weight = model.encoders["image"].weight.detach()[0]
    embedding = model.encoders["text"].embedding_layer.weight.detach()
    direction = model.encoders["text"].direction.detach()
    logits = model(inputs.batch).logits.detach()
    for i, e in enumerate(explanations):
        np.testing.assert_allclose(e.image_map, (weight * inputs.image[i, 0]).numpy(), atol=1e-6)
        expected = (WEIGHT * inputs.tabular[i] * (1 - inputs.tabular_missing[i])).numpy()
        np.testing.assert_allclose(e.tabular_attributions, expected, atol=1e-6)
        # baseline [PAD] has the zero embedding: each real token contributes <e_id, direction>
        ids, mask = inputs.text_ids[i], inputs.text_mask[i]
        np.testing.assert_allclose(
            e.token_attributions, ((embedding[ids] @ direction) * mask).numpy(), atol=1e-5
        )
        assert e.output == pytest.approx(float(logits[i]), abs=1e-5)
        assert abs(e.convergence_delta) < 1e-5


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fusion=st.sampled_from(["gated_attention", "concat", "late", "gated"]),
    seed=st.integers(0, 1000),
    temperature=st.sampled_from([1.0, 0.7]),
)
def test_completeness_attributions_sum_to_output_minus_baseline(fusion, seed, temperature):
    model = tiny_model(fusion, seed=seed)
    data = random_batch(3, seed)
    inputs = ExplainInputs.from_batch(data)
    explanations = explain(model, inputs, n_steps=48, temperature=temperature)
    logits = model(data).logits.detach()
    baselines = make_baselines(inputs)
    at_baseline = {
        **data,
        Keys.IMAGE: baselines.image,
        Keys.TABULAR: baselines.tabular,
        Keys.TEXT_IDS: baselines.text_ids,
    }
    baseline_logits = model(at_baseline).logits.detach()
    for i, e in enumerate(explanations):
        assert e.baseline_output == pytest.approx(float(baseline_logits[i]) / temperature, abs=1e-5)
        total = sum(v for v in e.modality_totals.values() if v is not None)
        gap = e.output - e.baseline_output
        # the reported delta is exactly the completeness gap, and the gap is small
        assert e.convergence_delta == pytest.approx(total - gap, abs=1e-5)
        assert abs(e.convergence_delta) <= 1e-3 + 0.02 * abs(gap)
        assert e.output == pytest.approx(float(logits[i]) / temperature, abs=1e-5)
        assert e.probability == pytest.approx(float(torch.sigmoid(logits[i] / temperature)), abs=1e-6)


def test_missing_modality_gets_no_attribution_and_its_placeholder_does_not_matter():
    model = tiny_model("gated_attention", seed=3)
    presence = torch.tensor([[True, True, True], [False, True, True], [True, True, False]])
    data = random_batch(3, 5, presence=presence)
    explanations = explain(model, ExplainInputs.from_batch(data), n_steps=16)
    assert explanations[1].image_map is None and explanations[1].modality_totals["image"] is None
    assert explanations[1].missing_modalities == ["image"]
    assert explanations[2].tokens is None and explanations[2].modality_totals["text"] is None
    assert explanations[0].missing_modalities == []
    # changing what the absent inputs hold changes nothing
    other = dict(data)
    other[Keys.IMAGE] = data[Keys.IMAGE].clone()
    other[Keys.IMAGE][1] = 1.0 - other[Keys.IMAGE][1]
    other[Keys.TEXT_IDS] = data[Keys.TEXT_IDS].clone()
    other[Keys.TEXT_IDS][2] = (other[Keys.TEXT_IDS][2] + 7) % 50 * data[Keys.TEXT_MASK][2]
    again = explain(model, ExplainInputs.from_batch(other), n_steps=16)
    np.testing.assert_allclose(again[1].tabular_attributions, explanations[1].tabular_attributions, atol=1e-6)
    np.testing.assert_allclose(again[2].image_map, explanations[2].image_map, atol=1e-6)


def test_a_modality_the_model_lacks_is_reported_missing():
    model = tiny_model("concat", modalities=(Modality.TABULAR, Modality.TEXT))
    data = random_batch(2, 1)
    (first, _) = explain(model, ExplainInputs.from_batch(data), n_steps=8)
    assert first.presence["image"] is False and first.image_map is None
    assert first.tabular_attributions is not None and first.token_attributions is not None


def test_occlusion_of_one_unit_is_the_change_of_output():
    model = tiny_model("gated_attention", seed=11)
    data = random_batch(2, 2)
    inputs = ExplainInputs.from_batch(data)
    explanations = explain(model, inputs, method="occlusion", occlusion_window=4)
    with torch.no_grad():
        base = model(data).logits
        for j in range(data[Keys.TABULAR].shape[1]):
            changed = dict(data)
            changed[Keys.TABULAR] = data[Keys.TABULAR].clone()
            changed[Keys.TABULAR][:, j] = 0.0
            effect = base - model(changed).logits
            for i, e in enumerate(explanations):
                assert e.tabular_attributions[j] == pytest.approx(float(effect[i]), abs=1e-5)
        changed = dict(data)
        changed[Keys.CATEGORICAL] = data[Keys.CATEGORICAL].clone()
        changed[Keys.CATEGORICAL][:, 1] = 0
        effect = base - model(changed).logits
        for i, e in enumerate(explanations):
            assert e.categorical_attributions[1] == pytest.approx(float(effect[i]), abs=1e-5)
            assert e.tabular[-1].kind == "categorical" and e.tabular[-1].attribution is not None
            assert e.convergence_delta is None


def test_occlusion_matches_integrated_gradients_on_a_linear_model():
    model, inputs = linear_case(seed=4)
    ig = explain(model, inputs, n_steps=4)
    occlusion = explain(model, inputs, method="occlusion", occlusion_window=1)
    for a, b in zip(ig, occlusion, strict=True):
        np.testing.assert_allclose(a.tabular_attributions, b.tabular_attributions, atol=1e-5)
        np.testing.assert_allclose(a.token_attributions, b.token_attributions, atol=1e-5)
        np.testing.assert_allclose(a.image_map, b.image_map, atol=1e-5)
        for modality in ("image", "text"):
            assert a.modality_totals[modality] == pytest.approx(b.modality_totals[modality], abs=1e-4)
    # a patch as large as the image gives every voxel the effect of removing the whole image
    whole = explain(model, inputs, method="occlusion", occlusion_window=8)
    for e in whole:
        np.testing.assert_allclose(e.image_map, e.modality_totals["image"], atol=1e-5)


def test_target_zero_and_temperature_rescale_the_attributions():
    model = tiny_model("late", seed=2)
    inputs = ExplainInputs.from_batch(random_batch(2, 3))
    positive = explain(model, inputs, n_steps=8)
    negative = explain(model, inputs, target=0, n_steps=8)
    cooled = explain(model, inputs, n_steps=8, temperature=2.0)
    for p, n, c in zip(positive, negative, cooled, strict=True):
        np.testing.assert_allclose(n.tabular_attributions, -p.tabular_attributions, atol=1e-6)
        np.testing.assert_allclose(c.image_map, p.image_map / 2.0, atol=1e-6)
        assert n.to_dict()["target"] == "negative"


def test_the_calibration_offset_moves_the_output_and_probability_but_no_attribution():
    model = tiny_model("gated", seed=3)
    inputs = ExplainInputs.from_batch(random_batch(2, 5))
    plain = explain(model, inputs, n_steps=8, temperature=1.5)
    for target, sign in ((1, 1.0), (0, -1.0)):
        shifted = explain(model, inputs, n_steps=8, temperature=1.5, offset=-0.7, target=target)
        reference = plain if target == 1 else explain(model, inputs, n_steps=8, temperature=1.5, target=0)
        for a, b in zip(reference, shifted, strict=True):
            np.testing.assert_allclose(b.image_map, a.image_map, atol=1e-6)
            np.testing.assert_allclose(b.tabular_attributions, a.tabular_attributions, atol=1e-6)
            assert b.output == pytest.approx(a.output - 0.7 * sign)
            assert b.baseline_output == pytest.approx(a.baseline_output - 0.7 * sign)
            assert b.probability == pytest.approx(1 / (1 + np.exp(-(b.logit / 1.5 - 0.7))))


def test_internal_batch_size_changes_nothing():
    model = tiny_model("gated", seed=8)
    inputs = ExplainInputs.from_batch(random_batch(3, 4))
    whole = explain(model, inputs, n_steps=8)
    chunked = explain(model, inputs, n_steps=8, internal_batch_size=5)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a.image_map, b.image_map, atol=1e-5)
        np.testing.assert_allclose(a.token_attributions, b.token_attributions, atol=1e-5)


def test_tabular_rows_speak_the_features_language():
    model, inputs = linear_case(batch=2)
    canonical = np.tile(np.array([80.0, 12.0, np.nan, 37.2, 140.0, 4.1]), (2, 1))
    features = [
        FeatureInfo("heart_rate", "Heart rate", "/min", (60.0, 100.0)),
        FeatureInfo("resp_rate", "Respiratory rate", "/min", (12.0, 20.0)),
        FeatureInfo("spo2", "SpO2", "%", (94.0, 100.0)),
        FeatureInfo("temperature", "Temperature", "Cel", (36.1, 37.8)),
        FeatureInfo("sodium", "Sodium", "mmol/L", (135.0, 145.0)),
        FeatureInfo("age", "Age"),
    ]
    inputs.features, inputs.canonical = features, canonical
    inputs.tabular_missing = inputs.tabular_missing.clone()
    inputs.tabular_missing[:, 2] = 1.0
    inputs.tabular = inputs.tabular * (1 - inputs.tabular_missing)
    inputs.categorical_features, inputs.categories = [FeatureInfo("sex", "Sex")], [["F"], [None]]
    (first, _) = explain(model, inputs, n_steps=4)
    rows = {r.key: r for r in first.tabular}
    assert (
        rows["heart_rate"].value == 80.0
        and rows["heart_rate"].unit == "/min"
        and rows["heart_rate"].abnormal is False
    )
    assert rows["spo2"].missing and rows["spo2"].value is None and rows["spo2"].attribution == 0.0
    assert rows["sodium"].abnormal is False and rows["age"].unit is None and rows["age"].abnormal is None
    assert rows["sex"].kind == "categorical" and rows["sex"].value == "F" and rows["sex"].attribution is None
    assert first.to_dict()["tabular"][0]["display"] == "Heart rate"


NOTES = [
    "Chest radiograph shows consolidation in the right lower lobe. Productive cough since Monday.",
    "No consolidation. Patient afebrile; rigors overnight reported by nursing staff.",
    "Findings consistent with pneumonia. COVID-19 swab pending.",
]


def test_token_spans_map_back_to_the_words_of_the_note():
    tokenizer = train_note_tokenizer(NOTES, vocab_size=60, min_frequency=1)
    encoded = encode_notes(tokenizer, NOTES, max_length=24)
    vocab = tokenizer.get_vocab_size()
    model = linear_model(None, None, None, text=(vocab, 4, 24), seed=1)
    presence = torch.tensor([[False, False, True]] * len(NOTES))
    batch = {
        Keys.TEXT_IDS: torch.from_numpy(encoded.ids),
        Keys.TEXT_MASK: torch.from_numpy(encoded.mask),
        Keys.PRESENCE: presence,
    }
    inputs = ExplainInputs.from_batch(batch, texts=NOTES, text_offsets=encoded.offsets)
    baselines = make_baselines(inputs)
    # [CLS] and [SEP] stay in the baseline, every other real token becomes [PAD]
    assert baselines.text_ids[0, 0] == encoded.ids[0, 0] != 0
    explanations = explain(model, inputs, baselines, n_steps=4)
    pieces_were_merged = False
    for i, e in enumerate(explanations):
        note = NOTES[i]
        covered = note[: e.text_covered_characters]
        assert [s.text for s in e.tokens] == re.findall(r"\w+|[^\w\s]", covered)
        for span in e.tokens:
            assert note[span.start : span.end] == span.text
        pieces_were_merged |= any(len(s.positions) > 1 for s in e.tokens)
        content = content_positions(encoded.offsets[i], encoded.mask[i])
        assert sum(s.attribution for s in e.tokens) == pytest.approx(
            e.token_attributions[content].sum(), abs=1e-6
        )
        special = (encoded.mask[i] > 0) & ~content
        assert np.all(e.token_attributions[special] == 0.0)
    assert pieces_were_merged, "the small vocabulary should split some words into sub-word pieces"
    unmerged = explain(model, inputs, baselines, n_steps=4, merge_words=False)
    assert all(len(s.positions) == 1 for s in unmerged[0].tokens)


def test_image_map_is_resampled_onto_the_original_grid():
    model, inputs = linear_case(batch=2)
    # original: 16x16 at 1 mm, x flipped (LAS); model grid: 8x8 at 2 mm, RAS, same field of view
    original = np.diag([-1.0, 1.0, 1.0, 1.0])
    original[0, 3] = 15.0
    model_affine = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
    grid = ImageGrid(model_affine, (8, 8), original, (16, 16))
    inputs.image_grids = [grid, None]
    first, second = explain(model, inputs, n_steps=4)
    assert first.image_original.shape == (16, 16) and second.image_original is None
    assert first.image_original.sum() == pytest.approx(first.image_map.sum(), rel=0.15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "integrated_gradient"}, "did you mean 'integrated_gradients'"),
        ({"n_steps": 0}, "n_steps"),
        ({"target": 2}, "target"),
        ({"internal_batch_size": 0}, "internal_batch_size"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_arguments_are_explained(kwargs, message):
    model, inputs = linear_case(batch=1)
    with pytest.raises(MmdxError, match=re.escape(message)):
        explain(model, inputs, **kwargs)


def test_baseline_of_the_wrong_shape_is_refused():
    model, inputs = linear_case(batch=2)
    baselines = make_baselines(inputs)
    baselines.tabular = baselines.tabular[:, :3]
    with pytest.raises(MmdxError, match="tabular baseline has shape"):
        explain(model, inputs, baselines)


def test_blur_baseline_keeps_the_mean_and_smooths():
    _, inputs = linear_case(batch=2)
    blurred = make_baselines(inputs, image="blur", blur_sigma=1.5).image
    assert blurred.shape == inputs.image.shape
    assert float(blurred.mean()) == pytest.approx(float(inputs.image.mean()), abs=0.02)
    assert float(blurred.std()) < float(inputs.image.std())
    with pytest.raises(MmdxError, match="did you mean 'blur'"):
        make_baselines(inputs, image="blurr")


def test_every_case_has_one_explanation_in_order():
    model = tiny_model("gated_attention", seed=0)
    inputs = ExplainInputs.from_batch(random_batch(4, 9))
    explanations = explain(model, inputs, n_steps=4)
    assert [e.case_id for e in explanations] == inputs.case_ids
    assert all(set(e.gates) == {str(m) for m in MODALITIES} for e in explanations)


def test_three_dimensional_volumes():
    model = tiny_model("gated_attention", seed=1, spatial_dims=3)
    inputs = ExplainInputs.from_batch(random_batch(2, 1, image_shape=(8, 8, 8)))
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    inputs.image_grids = [ImageGrid(affine, (8, 8, 8), np.diag([1.5, 1.5, 2.0, 1.0]), (16, 16, 16)), None]
    explanations = explain(model, inputs, n_steps=16, internal_batch_size=3)
    assert explanations[0].image_map.shape == (8, 8, 8)
    assert explanations[0].image_original.shape == (16, 16, 16)
    assert abs(explanations[0].convergence_delta) < 1e-2 + 0.02 * abs(
        explanations[0].output - explanations[0].baseline_output
    )
    occlusion = explain(model, inputs, method="occlusion", occlusion_window=4)
    assert occlusion[1].image_map.shape == (8, 8, 8)
    # 4-voxel patches: the map is constant inside each patch
    patch = occlusion[1].image_map[:4, :4, :4]
    np.testing.assert_allclose(patch, patch[0, 0, 0])


def test_expected_gradients_of_the_values_are_relative_to_the_training_cases_not_the_median():
    from dataclasses import replace

    from mmdx.errors import MmdxError
    from mmdx.explain.inputs import make_baselines

    weight = torch.randn(6, generator=torch.Generator().manual_seed(1))
    model = linear_model(image_shape=(16, 16), tabular_weight=weight, text=(50, 4, 12))
    data = random_batch(2)
    inputs = ExplainInputs.from_batch(data)
    reference = torch.randn(8, 6, generator=torch.Generator().manual_seed(2))
    baselines = replace(make_baselines(inputs), tabular_reference=reference)
    options = {"tabular_baseline": "training", "expected_samples": 4000}
    (first, _) = explain(model, inputs, baselines, method_options=options)
    measured = 1 - data["tabular_missing"][0]
    expected = (weight * (data["tabular"][0] * measured - reference.mean(0)) * measured).numpy()
    np.testing.assert_allclose(first.tabular_attributions, expected, atol=0.05 * np.abs(expected).max())
    assert "expected gradients" in first.settings["tabular_baseline"]
    with pytest.raises(MmdxError, match="tabular_reference"):
        explain(model, inputs, method_options=options)
