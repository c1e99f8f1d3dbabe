"""The degradations of the robustness section: noise and missingness are what they claim, seeded per case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from mmdx.audit.robustness import (
    Degradation,
    Perturbation,
    PerturbedDataset,
    add_image_noise,
    drop_tabular_values,
    perturbations,
)
from mmdx.errors import MmdxError
from mmdx.keys import Keys, Modality

N_FEATURES = 8  # catalogue features; two numeric case columns follow them


class Samples(Dataset):
    """Cases with a mid-grey image, 8 features (observed where ``observed``) and 2 numeric columns."""

    def __init__(self, n: int = 6, image: bool = True) -> None:
        rng = np.random.default_rng(0)
        self.observed = rng.random((n, N_FEATURES)) < 0.75
        self.observed[0] = True
        self.image = image

    def __len__(self) -> int:
        return len(self.observed)

    def __getitem__(self, index: int) -> dict:
        missing = np.r_[~self.observed[index], [False, False]].astype(np.float32)
        values = np.where(missing == 1, 0.0, np.arange(1, N_FEATURES + 3, dtype=np.float32))
        return {
            Keys.CASE_ID: f"c{index}",
            Keys.IMAGE: torch.full((1, 64, 64), 0.5),
            Keys.TABULAR: torch.from_numpy(values.astype(np.float32)),
            Keys.TABULAR_MISSING: torch.from_numpy(missing),
            Keys.PRESENCE: torch.tensor([self.image, True, True]),
        }


def test_conditions_follow_the_modalities_the_model_reads() -> None:
    conditions = perturbations(["image", "tabular", "text"], [0.2, 0.1], [0.5])
    assert conditions[0].kind is Degradation.INTACT
    assert [c.modality for c in conditions if c.kind is Degradation.MODALITY_REMOVED] == list(Modality)
    assert [c.level for c in conditions if c.kind is Degradation.IMAGE_NOISE] == [0.1, 0.2]
    assert [c.level for c in conditions if c.kind is Degradation.TABULAR_MISSINGNESS] == [0.5]
    text_only = perturbations(["text"], [0.1], [0.5])
    assert [c.kind for c in text_only] == [Degradation.INTACT, Degradation.MODALITY_REMOVED]
    assert Perturbation(Degradation.TABULAR_MISSINGNESS, 0.25).label == "25% of tabular values missing"


@pytest.mark.parametrize("levels", [[0.0], [-0.1], [1.5], [float("nan")]])
def test_levels_outside_0_1_are_refused(levels: list[float]) -> None:
    with pytest.raises(MmdxError, match="levels must be > 0"):
        perturbations(["image", "tabular"], levels, [0.5])
    with pytest.raises(MmdxError, match="levels must be > 0"):
        perturbations(["image", "tabular"], [0.1], levels)


def test_image_noise_has_the_stated_standard_deviation_and_stays_in_range() -> None:
    image = torch.full((1, 128, 128), 0.5)
    noisy = add_image_noise(image, 0.1, torch.Generator().manual_seed(0))
    # far from the clipping bounds, the noise is exactly N(0, 0.1^2)
    assert float((noisy - image).std()) == pytest.approx(0.1, rel=0.03)
    assert float((noisy - image).mean()) == pytest.approx(0.0, abs=0.005)
    extreme = add_image_noise(torch.zeros(1, 32, 32), 1.0, torch.Generator().manual_seed(0))
    assert float(extreme.min()) == 0.0 and float(extreme.max()) <= 1.0 and float(extreme.max()) > 0.5
    again = add_image_noise(image, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75, 1.0])
def test_missingness_removes_that_fraction_of_observed_features_only(fraction: float) -> None:
    sample = Samples()[1]
    values, missing = sample[Keys.TABULAR], sample[Keys.TABULAR_MISSING]
    observed = int((missing[:N_FEATURES] == 0).sum())
    new_values, new_missing, left = drop_tabular_values(
        values, missing, N_FEATURES, fraction, torch.Generator()
    )
    removed = (new_missing == 1) & (missing == 0)
    assert int(removed.sum()) == round(fraction * observed) == observed - left
    assert not removed[N_FEATURES:].any()  # numeric case columns are never touched
    assert torch.equal(new_values[removed], torch.zeros(int(removed.sum())))
    assert torch.equal(new_values[~removed], values[~removed])
    assert torch.equal(missing, sample[Keys.TABULAR_MISSING])  # the inputs are not modified in place


def test_perturbed_samples_are_seeded_per_case_and_reproducible() -> None:
    base = Samples()
    noisy = PerturbedDataset(base, Perturbation(Degradation.IMAGE_NOISE, 0.2), N_FEATURES, seed=3)
    assert torch.equal(noisy[2][Keys.IMAGE], noisy[2][Keys.IMAGE])
    assert not torch.equal(noisy[2][Keys.IMAGE], noisy[3][Keys.IMAGE])
    other_seed = PerturbedDataset(base, Perturbation(Degradation.IMAGE_NOISE, 0.2), N_FEATURES, seed=4)
    assert not torch.equal(noisy[2][Keys.IMAGE], other_seed[2][Keys.IMAGE])
    # the tabular inputs are left alone by image noise, and vice versa
    assert torch.equal(noisy[2][Keys.TABULAR], base[2][Keys.TABULAR])
    dropped = PerturbedDataset(base, Perturbation(Degradation.TABULAR_MISSINGNESS, 0.5), N_FEATURES, seed=3)
    assert torch.equal(dropped[2][Keys.IMAGE], base[2][Keys.IMAGE])


def test_a_case_without_an_image_gets_no_noise() -> None:
    base = Samples(image=False)
    noisy = PerturbedDataset(base, Perturbation(Degradation.IMAGE_NOISE, 0.3), N_FEATURES, seed=0)
    assert torch.equal(noisy[0][Keys.IMAGE], base[0][Keys.IMAGE])


def test_removing_every_value_removes_the_tabular_modality_as_validation_would() -> None:
    base = Samples()
    dropped = PerturbedDataset(base, Perturbation(Degradation.TABULAR_MISSINGNESS, 1.0), N_FEATURES, seed=0)
    for i in range(len(base)):
        sample = dropped[i]
        assert bool((sample[Keys.TABULAR_MISSING][:N_FEATURES] == 1).all())
        assert not bool(sample[Keys.PRESENCE][1])
        assert bool(sample[Keys.PRESENCE][0]) and bool(sample[Keys.PRESENCE][2])
    half = PerturbedDataset(base, Perturbation(Degradation.TABULAR_MISSINGNESS, 0.5), N_FEATURES, seed=0)
    assert bool(half[0][Keys.PRESENCE][1])


def _branch_inputs(image_scores: np.ndarray, image_lost: float):
    from types import SimpleNamespace

    from mmdx.keys import MODALITIES
    from mmdx.training.inference import Predictions

    y = np.array([1, 0] * 40)
    aux = np.zeros((80, len(MODALITIES)))
    aux[:, 0] = image_scores
    aux[:, 1] = np.where(y == 1, 0.2, -0.2) + np.linspace(-1, 1, 80)  # a weak tabular head
    presence = np.zeros((80, len(MODALITIES)), dtype=bool)
    presence[:, :2] = True
    intact = Predictions(
        [str(i) for i in range(80)], y.astype(float), np.zeros(80), aux, presence, aux_logits=aux
    )
    bundle = SimpleNamespace(
        card={"training": {"branches": {"image": {"own_val_auroc": 0.9}}}},
        preprocessing=SimpleNamespace(modalities=["image", "tabular"]),
    )
    rows = [
        {
            "kind": "modality_removed",
            "modality": m,
            "auroc_change": {"estimate": -lost, "low": -lost - 0.02, "high": -lost + 0.02},
        }
        for m, lost in (("image", image_lost), ("tabular", 0.1))
    ]
    return bundle, y, intact, rows


def test_a_branch_strong_alone_but_unused_by_the_fusion_is_flagged() -> None:
    from mmdx.audit.model_card import _robustness_limits
    from mmdx.audit.robustness import branch_contributions

    y_strong = np.where(np.array([1, 0] * 40) == 1, 2.0, -2.0)  # a perfect image head
    bundle, y, intact, rows = _branch_inputs(y_strong, image_lost=0.0)
    branches = branch_contributions(bundle, y, intact, rows, n_resamples=100, alpha=0.05, seed=0)
    image, tabular = branches
    assert image["alone"]["estimate"] == 1.0 and image["lost_when_removed"]["estimate"] == 0.0
    assert image["lost_when_removed"]["low"] == pytest.approx(-0.02) and image["own_val_auroc"] == 0.9
    assert image["under_used"] and not tabular["under_used"]  # tabular costs 0.1 when removed
    section = {"status": "ok", "branches": branches, "conditions": [], "reproduction": None}
    texts = [text for _, text in _robustness_limits(section)]
    assert any(t.startswith("image branch: alone 1.00, lost when removed 0.00") for t in texts)

    bundle, y, intact, rows = _branch_inputs(y_strong, image_lost=0.05)
    assert not branch_contributions(bundle, y, intact, rows, 100, 0.05, 0)[0]["under_used"]
    chance = np.random.default_rng(0).normal(size=80)  # an image head at chance is not "under-used"
    bundle, y, intact, rows = _branch_inputs(chance, image_lost=0.0)
    assert not branch_contributions(bundle, y, intact, rows, 100, 0.05, 0)[0]["under_used"]
