"""Scores against planted ground truth: lesion mass and pointing game, causal features, planted phrases."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from mmdx.data.note_spans import TokenSpan
from mmdx.explain.attribution import CaseExplanation, FeatureAttribution
from mmdx.explain.grids import ImageGrid, to_original_grid
from mmdx.explain.truth import image_scores, load_truth, score_against_truth, tabular_scores, text_scores

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def case(case_id: str = "c1", **fields) -> CaseExplanation:
    base = dict(
        case_id=case_id,
        method="integrated_gradients",
        target=1,
        output=1.0,
        baseline_output=0.0,
        logit=1.0,
        probability=0.7,
        temperature=1.0,
        gates={"image": 1.0, "tabular": 1.0, "text": 1.0},
        presence={"image": True, "tabular": True, "text": True},
    )
    base.update(fields)
    return CaseExplanation(**base)


def image_case(peak: tuple[int, int]) -> CaseExplanation:
    grid = ImageGrid(np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 1.0]]), (10, 10), AFFINE, (10, 10))
    image_map = np.full((10, 10), 0.01, dtype=np.float32)
    image_map[peak] = 1.0
    return case(image_map=image_map, image_grid=grid, image_original=to_original_grid(image_map, grid))


LESION = np.zeros((10, 10), dtype=bool)
LESION[4:6, 4:6] = True


@pytest.mark.parametrize(("peak", "hit"), [((4, 5), True), ((6, 6), True), ((7, 5), False), ((0, 9), False)])
def test_pointing_game_allows_one_voxel(peak, hit):
    scores = image_scores(image_case(peak), LESION)
    assert scores["pointing_hit"] is hit
    assert scores["chance"] == pytest.approx(0.04)
    inside = 1.0 + 3 * 0.01 if LESION[peak] else 4 * 0.01
    assert scores["mass_share"] == pytest.approx(inside / (1.0 + 99 * 0.01), rel=1e-5)


def test_negative_attribution_is_not_mass():
    explanation = image_case((0, 0))
    explanation.image_original = -np.abs(explanation.image_original)
    explanation.image_original[4, 4] = 2.0
    assert image_scores(explanation, LESION)["mass_share"] == pytest.approx(1.0)


def feature(key: str, attribution: float | None, missing: bool = False, kind: str = "numeric"):
    return FeatureAttribution(key, key, None, None, missing, None, None, None, attribution, kind)


@pytest.mark.parametrize(
    ("attributions", "auc", "top"),
    [
        ({"a": 3.0, "b": -2.0, "c": 1.0, "d": 0.5}, 1.0, True),
        ({"a": 0.1, "b": -0.2, "c": 1.0, "d": 0.5}, 0.0, False),
        ({"a": 1.0, "b": 0.5, "c": -0.5, "d": 0.5}, 0.75, True),
        ({"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5}, 0.5, True),
    ],
)
def test_tabular_ranking_auc(attributions, auc, top):
    rows = [feature(k, v) for k, v in attributions.items()]
    rows += [feature("e", 0.0, missing=True), feature("site", 9.0, kind="categorical")]
    scores = tabular_scores(case(tabular=rows), {"a", "b"})
    assert scores["ranking_auc"] == pytest.approx(auc)
    assert scores["top_is_causal"] is top
    assert scores["chance_top"] == pytest.approx(0.5)


def test_tabular_needs_both_kinds_measured():
    rows = [feature("a", 1.0), feature("c", 0.2, missing=True)]
    assert tabular_scores(case(tabular=rows), {"a"}) is None


NOTE = "Cough. No consolidation. There is rigors. Fine."
PHRASES = [
    {"status": "negated", "span": [7, 24]},
    {"status": "affirmed", "span": [25, 41]},
    {"status": "affirmed", "span": [42, 47]},  # beyond the seen text below: ignored
]


def spans(attributions: dict[str, float]) -> list[TokenSpan]:
    out, start = [], 0
    for word, value in attributions.items():
        start = NOTE.index(word, start)
        out.append(TokenSpan(word, start, start + len(word), value, (len(out),)))
        start += len(word)
    return out


@pytest.mark.parametrize(
    ("top_word", "affirmed", "negated"),
    [("consolidation", False, True), ("rigors", True, False), ("Cough", False, False)],
)
def test_text_top_word_by_status(top_word, affirmed, negated):
    words = {"Cough": 0.1, "No": -0.2, "consolidation": 0.1, "There": 0.0, "is": 0.05, "rigors": 0.1}
    words[top_word] = -5.0
    explanation = case(tokens=spans(words), text_covered_characters=41)
    scores = text_scores(explanation, PHRASES)
    assert scores["affirmed"]["hit"] is affirmed
    assert scores["negated"]["hit"] is negated
    assert scores["any"]["hit"] is (affirmed or negated)
    assert scores["negated"]["chance"] == pytest.approx(2 / 6)


@pytest.mark.parametrize(
    ("cough", "negated_phrase", "affirmed_phrase", "abs_affirmed", "signed_affirmed", "signed_negated"),
    [
        # the negated finding is the largest |attribution|, but each points the right way
        (0.1, -1.1, 1.0, False, True, True),
        # an unplanted phrase is the most positive: the affirmed sentence is not what raises the risk most
        (2.0, -1.1, 1.0, False, False, True),
        # the negated sentence pushes the risk up: no phrase lowers it, a miss for the negated status
        (0.1, 0.5, 1.0, True, True, False),
    ],
)
def test_signed_phrase_scores_follow_the_direction_of_the_finding(
    cough, negated_phrase, affirmed_phrase, abs_affirmed, signed_affirmed, signed_negated
):
    from mmdx.data.note_spans import PhraseSpan

    phrases = [
        PhraseSpan("Cough", 0, 5, cough, False, (0,)),
        PhraseSpan("No consolidation", 7, 23, negated_phrase, True, (1, 2)),
        PhraseSpan("There is rigors", 25, 40, affirmed_phrase, False, (3, 4, 5)),
    ]
    words = {"Cough": 0.1, "No": -0.2, "consolidation": 0.1, "There": 0.0, "is": 0.05, "rigors": 0.1}
    explanation = case(tokens=spans(words), text_covered_characters=41, phrases=phrases)
    scores = text_scores(explanation, PHRASES)
    assert scores["affirmed"]["phrase_hit"] is abs_affirmed
    assert scores["affirmed"]["signed_phrase_hit"] is signed_affirmed
    assert scores["negated"]["signed_phrase_hit"] is signed_negated
    assert "signed_phrase_hit" not in scores["any"]


def test_score_against_truth_reads_masks_and_splits_true_positives(tmp_path):
    (tmp_path / "ground_truth" / "masks").mkdir(parents=True)
    # a 2D mask written with another slice thickness than the image is on the same grid
    thick = AFFINE.copy()
    thick[2, 2] = 7.5
    nib.save(nib.Nifti1Image(LESION.astype(np.uint8), thick), str(tmp_path / "ground_truth/masks/c1.nii.gz"))
    records = [
        {
            "case_id": "c1",
            "lesion": True,
            "mask": "ground_truth/masks/c1.nii.gz",
            "causal_features": [],
            "planted_phrases": [],
        },
        {
            "case_id": "c2",
            "lesion": True,
            "mask": "ground_truth/masks/c1.nii.gz",
            "causal_features": [],
            "planted_phrases": [],
        },
    ]
    (tmp_path / "ground_truth" / "truth.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    truth = load_truth(tmp_path)
    hit, miss = image_case((4, 4)), image_case((0, 0))
    miss.case_id = "c2"
    summary = score_against_truth([hit, miss], truth, tmp_path, {"c1": 1, "c2": 1}, {"c1": 1, "c2": 0})
    assert summary["image"]["lesion_cases"]["n_cases"] == 2
    assert summary["image"]["lesion_cases"]["pointing_game"] == 0.5
    assert summary["image"]["true_positive_lesion_cases"]["n_cases"] == 1
    assert summary["image"]["true_positive_lesion_cases"]["pointing_game"] == 1.0
    assert summary["tabular"]["n_cases"] == 0 and summary["tabular"]["top_feature_causal"] is None
    assert load_truth(tmp_path / "nowhere") is None


def test_pointing_and_relevance_mass_agree_with_quantus():
    """Our localisation metrics against Quantus' independent implementation on fixed maps (non-negative maps:
    Quantus' relevance mass accuracy sums signed attributions, ours the positive part)."""
    import warnings

    import quantus

    from mmdx.explain.truth import pointing_hit, relevance_mass

    rng = np.random.default_rng(0)
    maps = np.abs(rng.normal(size=(6, 1, 12, 12)))
    masks = np.zeros_like(maps)
    masks[:, :, 3:7, 4:8] = 1
    maps[:3, :, 4, 5] += 5.0  # three maps peak inside the lesion
    x, y = rng.random(maps.shape), np.zeros(len(maps), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pointing = quantus.PointingGame(disable_warnings=True)(
            model=None, x_batch=x, y_batch=y, a_batch=maps, s_batch=masks
        )
        mass = quantus.RelevanceMassAccuracy(disable_warnings=True, normalise=False)(
            model=None, x_batch=x, y_batch=y, a_batch=maps, s_batch=masks
        )
    ours_pointing = [pointing_hit(m[0], s[0]) for m, s in zip(maps, masks, strict=True)]
    ours_mass = [relevance_mass(m[0], s[0]) for m, s in zip(maps, masks, strict=True)]
    assert ours_pointing == [bool(p) for p in pointing] == [True] * 3 + [False] * 3
    np.testing.assert_allclose(ours_mass, mass, rtol=1e-12)
    # and the spearman our randomisation and anatomy scores use
    from mmdx.explain.faithfulness import anatomy_score

    assert anatomy_score(maps[0, 0], x[0, 0]) == pytest.approx(
        quantus.similarity_func.correlation_spearman(np.abs(maps[0, 0]).ravel(), x[0, 0].ravel()), abs=1e-12
    )


def test_relevance_mass_uses_the_positive_part_and_lift_divides_by_the_lesion_share():
    from mmdx.explain.truth import relevance_mass

    attribution = np.array([[2.0, -5.0], [1.0, 1.0]])
    mask = np.array([[True, False], [False, False]])
    assert relevance_mass(attribution, mask) == pytest.approx(0.5)
    assert relevance_mass(-np.abs(attribution), mask) == 0.0
