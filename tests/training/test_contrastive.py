"""Cross-modal contrastive pretraining: the InfoNCE loss, which pairs a model offers, the config key, and
pretraining inside ``mmdx train`` (training-split cases only, unlabelled ones included, projection heads
left out of the bundle, a finished pretraining reused on ``--resume``, the default leaving training as it
was)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from mmdx.config import TrainConfig
from mmdx.errors import ConfigError
from mmdx.keys import Keys, Modality
from mmdx.run import RunPaths
from mmdx.training import contrastive
from mmdx.training.contrastive import check_pretrain, info_nce, modality_pairs, split_held_out
from mmdx.workflows.train import train_run


def test_info_nce_is_lower_for_aligned_pairs_than_for_shuffled_ones() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=generator)
    b = a + 0.1 * torch.randn(16, 8, generator=generator)
    shuffled = b[torch.randperm(16, generator=generator)]
    aligned = info_nce(a, b, temperature=0.1)
    assert aligned < info_nce(a, shuffled, temperature=0.1) - 1.0
    assert aligned < 0.1  # each case finds its own partner among 16
    assert torch.isclose(aligned, info_nce(b, a, temperature=0.1))  # symmetric
    # unrelated vectors: about the log of the number of candidates
    noise = torch.randn(16, 8, generator=generator)
    assert abs(float(info_nce(a, noise, temperature=1.0)) - np.log(16)) < 0.5


def test_pairs_follow_the_models_encoders_and_include_tabular() -> None:
    everything = ["image", "tabular", "text"]
    assert modality_pairs(everything, include_tabular=False) == [(Modality.IMAGE, Modality.TEXT)]
    assert len(modality_pairs(everything, include_tabular=True)) == 3
    assert modality_pairs(["image", "tabular"], include_tabular=True) == [(Modality.IMAGE, Modality.TABULAR)]
    assert modality_pairs(["image"], include_tabular=True) == []


def test_a_model_without_a_pair_fails_in_one_line_naming_the_key() -> None:
    config = TrainConfig(pretrain="contrastive")
    check_pretrain(config, ["image", "text"])
    check_pretrain(TrainConfig(), ["image"])  # nothing to check without pretraining
    with pytest.raises(ConfigError, match="train.pretrain contrastive") as failure:
        check_pretrain(config, ["image", "tabular"])
    assert "\n" not in str(failure.value) and "include_tabular" in str(failure.value)
    with_values = TrainConfig(pretrain="contrastive", contrastive={"include_tabular": True})
    check_pretrain(with_values, ["image", "tabular"])
    with pytest.raises(ConfigError, match="train.pretrain"):
        check_pretrain(with_values, ["text"])


def test_the_config_key_names_its_choices(tiny) -> None:
    _, tiny_config = tiny
    assert tiny_config().train.pretrain == "none"
    with pytest.raises(ConfigError, match=r"train\.pretrain: .*'none' or 'contrastive'.*contrastiv'"):
        tiny_config("train.pretrain=contrastiv")
    with pytest.raises(ConfigError, match=r"train\.contrastive\.temperature"):
        tiny_config("train.pretrain=contrastive", "train.contrastive.temperature=0")


def test_held_out_cases_come_from_the_cases_with_a_pair() -> None:
    presence = np.zeros((40, 3), dtype=bool)
    presence[:30, [0, 2]] = True  # 30 cases with image and notes
    presence[30:, 1] = True  # 10 with values alone
    pairs = modality_pairs(["image", "tabular", "text"], include_tabular=False)
    train, held = split_held_out(presence, pairs, share=0.1, seed=0)
    assert len(held) == 3 and len(train) == 27 and set(train) | set(held) == set(range(30))
    again = split_held_out(presence, pairs, share=0.1, seed=0)
    assert np.array_equal(again[1], held)
    with pytest.raises(Exception, match="train.pretrain contrastive found 5"):
        split_held_out(presence[25:], pairs, share=0.1, seed=0)


# ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def partly_labelled(
    small_cohort_2d: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[str]]:
    """The small cohort with the labels of 12 training cases removed; returns it and those cases."""
    out = tmp_path_factory.mktemp("cohorts") / "partly_labelled"
    shutil.copytree(small_cohort_2d, out)
    cases = pd.read_csv(out / "cases.csv", dtype={"case_id": str})
    unlabelled = cases.index[cases["split"] == "train"][:12]
    cases.loc[unlabelled, "label"] = np.nan
    cases.to_csv(out / "cases.csv", index=False)
    return out, cases.loc[unlabelled, "case_id"].tolist()


PRETRAIN = (
    "train.pretrain=contrastive",
    "train.contrastive.epochs=2",
    "train.epochs=1",
    "train.min_epochs=1",
)


@pytest.mark.slow
def test_pretraining_reads_training_cases_only_unlabelled_ones_included(
    partly_labelled: tuple[Path, list[str]], tmp_path: Path, tiny, monkeypatch
) -> None:
    cohort, unlabelled = partly_labelled
    _, tiny_config = tiny
    seen: set[str] = set()
    batch_loss = contrastive.ContrastivePretraining.batch_loss

    def recording(self, batch):
        seen.update(batch[Keys.CASE_ID])
        return batch_loss(self, batch)

    monkeypatch.setattr(contrastive.ContrastivePretraining, "batch_loss", recording)
    run = RunPaths(tmp_path / "pretrained")
    result = train_run(tiny_config(*PRETRAIN), cohort, run.root, progress=False)

    cases = pd.read_csv(cohort / "cases.csv", dtype={"case_id": str}).set_index("case_id")
    assert seen and set(cases.loc[sorted(seen), "split"]) == {"train"}  # never a validation or test input
    assert set(unlabelled) & seen  # cases without a label are pretrained on
    record = json.loads(run.training.read_text())["pretrain"]
    assert record["cases"]["unlabelled"] == len(set(unlabelled) & seen) > 0
    # every case with both image and notes, less those of the batches drop_last left out in both epochs
    assert len(seen) <= record["cases"]["train"] + record["cases"]["held_out"] < len(seen) + 2 * 16
    assert set(record["pairs"]) == {"image-text"} and record["pairs"]["image-text"]["held_out"] >= 2
    assert record["epochs_run"] == 2 and 1 <= record["best_epoch"] <= 2
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["held_out_loss"]) for h in record["history"])
    held_out = record["pairs"]["image-text"]["held_out"]  # one batch: chance is the log of its size
    assert all(h["held_out_chance"] == pytest.approx(np.log(held_out)) for h in record["history"])
    assert result.pretrain is not None and result.pretrain.best_epoch == record["best_epoch"]

    # only the paired encoders' weights are kept; the projection heads reach neither file nor bundle
    kept = load_file(str(run.pretrained_encoders))
    assert kept and all(k.startswith(("encoders.image.", "encoders.text.")) for k in kept)
    bundle = load_file(str(run.bundle / "model.safetensors"))
    assert all(k.startswith(("encoders.", "fusion.", "aux_heads.")) for k in bundle)

    # a resumed run loads the finished pretraining instead of redoing it
    def refuse(self, progress=False):
        raise AssertionError("pretrained again")

    monkeypatch.setattr(contrastive.ContrastivePretraining, "run", refuse)
    resumed = train_run(tiny_config(*PRETRAIN), cohort, run.root, resume=True, progress=False)
    assert resumed.pretrain is not None and resumed.pretrain.to_dict() == result.pretrain.to_dict()


@pytest.mark.slow
def test_default_none_leaves_training_unchanged(
    small_cohort_2d: Path, tiny_run: Path, tmp_path: Path, tiny, monkeypatch
) -> None:
    _, tiny_config = tiny

    def refuse(*args, **kwargs):
        raise AssertionError("pretraining ran")

    monkeypatch.setattr("mmdx.workflows.train.pretrain_encoders", refuse)
    out = tmp_path / "none"
    # the tiny_run fixture's config, with train.pretrain spelled out and the unused section changed
    config = tiny_config("train.epochs=2", "train.pretrain=none", "train.contrastive.epochs=1")
    result = train_run(config, small_cohort_2d, out, progress=False)
    a, b = (
        load_file(str(tiny_run / "bundle/model.safetensors")),
        load_file(str(out / "bundle/model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert result.pretrain is None and json.loads((out / "training.json").read_text())["pretrain"] is None
    assert not RunPaths(out).pretrained_encoders.exists()
