"""The dataset: fitted on the training split only, images cached once, samples with the right shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdx.config import ImageConfig, load_config
from mmdx.data.dataset import ImageCache, MultimodalDataset, build_case_table, collate, fit_preprocessing
from mmdx.data.validation import validate_cohort
from mmdx.keys import Keys

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def cohort(small_cohort_2d: Path):
    return validate_cohort(small_cohort_2d, check_images=False)


def test_preprocessing_is_fitted_on_training_cases_only(cohort) -> None:
    config = load_config(CONFIG)
    prep = fit_preprocessing(cohort, config)
    train_ids = set(cohort.split("train")["case_id"])
    train_obs = cohort.observations[cohort.observations["case_id"].isin(train_ids)]
    from mmdx.data.tabular import aggregate_latest

    latest = aggregate_latest(train_obs, sorted(train_ids), ["heart_rate"])
    assert prep.normaliser.median_["heart_rate"] == pytest.approx(np.nanmedian(latest["heart_rate"]))
    assert prep.tabular_columns == prep.features + ["age"]
    assert set(prep.normaliser.vocab_["site"]) <= set(cohort.split("train")["site"])


def test_samples_have_contract_shapes_and_presence(cohort, tmp_path: Path) -> None:
    config = load_config(CONFIG)
    prep = fit_preprocessing(cohort, config)
    table = build_case_table(cohort, prep)
    cache = ImageCache(prep.image_config, "memory", tmp_path)
    dataset = MultimodalDataset(table, prep, cache)
    batch = collate([dataset[i] for i in range(8)])
    assert batch[Keys.IMAGE].shape == (8, 1, 32, 32)
    assert batch[Keys.TABULAR].shape == batch[Keys.TABULAR_MISSING].shape == (8, len(prep.tabular_columns))
    assert batch[Keys.TEXT_IDS].shape == (8, config.data.text.max_length)
    assert batch[Keys.PRESENCE].dtype == torch.bool
    assert 0.0 <= float(batch[Keys.IMAGE].min()) and float(batch[Keys.IMAGE].max()) <= 1.0
    cases = cohort.cases.set_index("case_id")
    for i, case_id in enumerate(batch[Keys.CASE_ID]):
        assert bool(batch[Keys.PRESENCE][i, 0]) == bool(cases.loc[case_id, "has_image"])
        if not batch[Keys.PRESENCE][i, 0]:
            assert float(batch[Keys.IMAGE][i].abs().sum()) == 0.0


def test_image_cache_decodes_once_and_keys_on_settings(cohort, tmp_path: Path) -> None:
    path = cohort.cases["image_path"].dropna().iloc[0]
    config = ImageConfig(dims=2, shape=[32, 32], spacing=[11.0, 11.0], intensity="window")
    cache = ImageCache(config, "disk", tmp_path)
    first, affine = cache.load(path)
    again, _ = ImageCache(config, "disk", tmp_path).load(path)
    assert cache.misses == 1 and np.array_equal(first, again)
    assert affine.shape == (3, 3)
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1 and oct(tmp_path.stat().st_mode & 0o777) == "0o700"
    with np.load(files[0], allow_pickle=False) as data:
        assert data["image"].shape == (1, 32, 32)
    other = ImageCache(
        ImageConfig(dims=2, shape=[32, 32], spacing=[11.0, 11.0], intensity="window", window=(-160.0, 240.0)),
        "disk",
        tmp_path,
    )
    assert other.key(path) != cache.key(path)
    windowed, _ = other.load(path)
    assert not np.array_equal(windowed, first) and len(list(tmp_path.rglob("*.npz"))) == 2


def test_warm_fills_the_cache_in_parallel(cohort, tmp_path: Path) -> None:
    paths = cohort.cases["image_path"].dropna().tolist()[:12]
    cache = ImageCache(
        ImageConfig(dims=2, shape=[32, 32], spacing=[11.0, 11.0], intensity="window"), "memory", tmp_path
    )
    assert cache.warm(paths, workers=2) == 12
    assert cache.warm(paths, workers=2) == 0
    cache.load(paths[0])
    assert cache.misses == 0


def test_ctrl_c_while_warming_stops_without_decoding_the_rest(cohort, tmp_path: Path) -> None:
    paths = cohort.cases["image_path"].dropna().tolist()
    cache = ImageCache(
        ImageConfig(dims=2, shape=[32, 32], spacing=[11.0, 11.0], intensity="window"), "disk", tmp_path
    )

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.warm(paths, workers=2, progress=interrupt)
    decoded = len(list(tmp_path.rglob("*.npz")))
    assert 1 <= decoded < len(paths) // 2, (decoded, len(paths))  # the images not started were dropped


def test_the_cache_workers_leave_ctrl_c_to_the_parent() -> None:
    import signal

    from mmdx.data.dataset import _one_thread_worker

    handler, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()
    try:
        _one_thread_worker()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and torch.get_num_threads() == 1
    finally:
        signal.signal(signal.SIGINT, handler)
        torch.set_num_threads(threads)


def test_time_since_measurement_adds_one_column_per_feature(cohort, tmp_path: Path) -> None:
    from mmdx.data.dataset import Preprocessing

    validated = cohort
    off = fit_preprocessing(validated, load_config(CONFIG))
    on = fit_preprocessing(validated, load_config(CONFIG, ["data.tabular.time_since_measurement=true"]))
    assert off.time_columns == [] and len(on.time_columns) == len(on.features)
    assert on.tabular_columns == on.features + on.time_columns + on.numeric_columns
    table = build_case_table(validated, on)
    assert table.tabular.shape[1] == len(on.tabular_columns)
    hours = table.canonical[:, len(on.features) : 2 * len(on.features)]
    present = table.canonical[:, : len(on.features)]
    assert np.array_equal(np.isnan(hours), np.isnan(present))  # every synthetic value has a time
    assert np.nanmin(hours) >= 0
    on.save(tmp_path)
    assert Preprocessing.load(tmp_path).tabular_columns == on.tabular_columns


def test_an_image_off_the_grid_is_named_before_collate(cohort, tmp_path: Path) -> None:
    """Nothing reaches collate with inconsistent shapes (it used to die there with 'stack expects each tensor
    to be equal size'): the dataset names the case."""
    from mmdx.data.dataset import ImageGridError

    prep = fit_preprocessing(cohort, load_config(CONFIG))
    table = build_case_table(cohort, prep)
    cache = ImageCache(prep.image_config, "memory", tmp_path, declared_modality="CT")
    index = int(np.flatnonzero(table.presence[:, 0])[0])
    path = table.image_paths[index]
    cache._memory[cache.key(path)] = (np.zeros((1, 16, 16), np.float32), np.eye(3))  # a stale entry
    dataset = MultimodalDataset(table, prep, cache)
    with pytest.raises(ImageGridError) as info:
        dataset[index]
    assert table.case_ids[index] in str(info.value) and "[1, 16, 16]" in str(info.value)


def test_the_fitted_plan_is_saved_with_its_fingerprint(cohort, tmp_path: Path) -> None:
    from mmdx.data.dataset import Preprocessing

    prep = fit_preprocessing(cohort, load_config(CONFIG))
    plan = prep.image_plan
    assert plan.dims == 2 and plan.shape == (32, 32) and plan.trained_families == ("CT",)
    assert prep.image_fingerprint["n_images"] == int(cohort.split("train")["has_image"].sum())
    prep.save(tmp_path)
    again = Preprocessing.load(tmp_path)
    assert again.image_plan == plan and again.image_fingerprint == prep.image_fingerprint


def test_negation_marking_is_fitted_saved_and_refused_for_a_pretrained_tokenizer(
    cohort, tmp_path: Path
) -> None:
    from mmdx.data.dataset import Preprocessing
    from mmdx.errors import ConfigError
    from mmdx.models.encoders.text import minilm_folder

    off = fit_preprocessing(cohort, load_config(CONFIG))
    on = fit_preprocessing(cohort, load_config(CONFIG, ["data.text.negation=true"]))
    assert not off.text_negation and on.text_negation
    plain, marked = build_case_table(cohort, off), build_case_table(cohort, on)
    vocabulary = on.tokenizer.get_vocab_size()
    assert (marked.text_ids >= vocabulary).any() and (plain.text_ids < vocabulary).all()
    assert np.array_equal(marked.text_ids % vocabulary, plain.text_ids)
    on.save(tmp_path)
    assert Preprocessing.load(tmp_path).text_negation
    # a reader that cannot mark negations refuses such a bundle; every other bundle keeps version 2
    assert json.loads((tmp_path / "preprocessing.json").read_text())["schema_version"] == 3
    (tmp_path / "off").mkdir()
    off.save(tmp_path / "off")
    legacy = json.loads((tmp_path / "off" / "preprocessing.json").read_text())
    assert legacy["schema_version"] == 2
    del legacy["text"]["negation"]  # a bundle written before negation marking existed
    (tmp_path / "off" / "preprocessing.json").write_text(json.dumps(legacy))
    assert not Preprocessing.load(tmp_path / "off").text_negation
    with pytest.raises(ConfigError, match="data.text.negation"):
        fit_preprocessing(
            cohort,
            load_config(CONFIG, ["data.text.negation=true", "model.text.name=minilm"]),
            pretrained_tokenizer=minilm_folder() / "tokenizer.json",
        )
