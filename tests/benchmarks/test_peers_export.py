"""The peer-neutral export: every peer sees mmdx's validated cases, splits and preprocessed images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks.peers.common import ExportError, PeerExport, PeerModality, Split
from benchmarks.peers.export import (
    DEFAULT_CONFIGS,
    export_cohort,
    image_stat_names,
    image_statistics,
    middle_axial_slice,
)
from mmdx.data.dataset import ImageCache
from mmdx.data.plan import ImagePlan, declared_modality
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.tabular import aggregate_latest
from mmdx.data.validation import validate_cohort


class RecordingEmbedder:
    """A cheap stand-in for MiniLM: the note's length and word count; remembers what it was given."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        self.texts = list(texts)
        vectors = np.array([[len(t), len(t.split())] for t in texts], dtype=np.float32)
        return vectors, np.zeros(2, dtype=np.float32)


@pytest.fixture(scope="module")
def exported(small_cohort_2d: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("export") / "demo"
    embedder = RecordingEmbedder()
    manifest = export_cohort(
        small_cohort_2d, out, DEFAULT_CONFIGS[2], workers=1, log=lambda _: None, embed_notes=embedder
    )
    return PeerExport(out), validate_cohort(small_cohort_2d), embedder, manifest


@pytest.mark.slow  # exports a synthetic cohort: validation, image preprocessing
def test_export_keeps_the_validated_cases_and_splits(exported):
    export, validated, _, manifest = exported
    assert export.case_ids == validated.cases["case_id"].tolist()
    assert export.cases["split"].tolist() == validated.cases["split"].tolist()
    np.testing.assert_array_equal(export.labels, validated.cases["label"].to_numpy(dtype=float))
    for split in Split:
        assert len(export.index(split)) == manifest["labelled_per_split"][split.value] > 0
    for modality in PeerModality:
        np.testing.assert_array_equal(export.presence(modality), validated.cases[f"has_{modality.value}"])


@pytest.mark.slow  # exports a synthetic cohort: validation, image preprocessing
def test_export_tabular_is_the_canonical_latest_value(exported):
    export, validated, _, _ = exported
    table = export.tabular()
    features = [c for c in export.continuous_columns if c in validated.catalogue.keys]
    expected = aggregate_latest(validated.observations, export.case_ids, features).to_numpy()
    has = export.presence(PeerModality.TABULAR)
    np.testing.assert_allclose(table[features].to_numpy()[has], expected[has])
    # a case without observations has its whole tabular row missing, as mmdx masks the whole modality
    assert (~has).any(), "the synthetic cohort always has cases without observations"
    assert table.loc[~has, export.continuous_columns].isna().all().all()
    assert (table.loc[~has, export.category_columns] == 0).all().all()
    # each categorical column is one-hot where present
    sex = [c for c in export.category_columns if c.startswith("sex=")]
    assert (table.loc[has, sex].sum(axis=1) == 1).all()


@pytest.mark.slow  # exports a synthetic cohort: validation, image preprocessing
def test_export_images_are_the_arrays_mmdx_trains_on(exported):
    export, validated, _, _ = exported
    images = export.image(2)
    plan = ImagePlan.from_dict(export.manifest["image"]["settings"])
    cache = ImageCache(plan, "disk", declared_modality=declared_modality(validated))
    has = export.presence(PeerModality.IMAGE)
    for i in np.flatnonzero(has)[:5]:
        path = validated.cases["image_path"].iloc[i]
        np.testing.assert_array_equal(images[i], cache.load(path)[0][0])
    assert (~has).any()
    assert not images[~has].any()  # a case without an image gets a blank one
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.slow  # exports a synthetic cohort: validation, image preprocessing
def test_export_notes_and_embeddings(exported):
    export, validated, embedder, _ = exported
    assert embedder.texts == [validated.notes.get(c) or "" for c in export.case_ids]
    assert export.notes() == embedder.texts
    vectors, empty = export.minilm()
    assert vectors.shape == (len(export.case_ids), 2) and empty.shape == (2,)
    stats, blank, names = export.image_stats()
    assert stats.shape == (len(export.case_ids), len(image_stat_names())) and names == image_stat_names()
    np.testing.assert_array_equal(blank, image_statistics(np.zeros(export.manifest["image"]["shape"])))


@pytest.mark.slow  # exports a synthetic cohort: validation, image preprocessing
def test_export_is_reused_then_rebuilt_when_the_preprocessing_changes(exported, small_cohort_2d, tmp_path):
    export, _, _, manifest = exported
    stamp = os.stat(export.directory / "cases.csv").st_mtime_ns
    again = export_cohort(
        small_cohort_2d,
        export.directory,
        DEFAULT_CONFIGS[2],
        workers=1,
        log=lambda _: None,
        embed_notes=RecordingEmbedder(),
    )
    assert again["key"] == manifest["key"]
    assert os.stat(export.directory / "cases.csv").st_mtime_ns == stamp
    # another tabular selection (images unchanged, so they come from the cache) is another export
    changed = tmp_path / "no_age.yaml"
    changed.write_text(f"base: {DEFAULT_CONFIGS[2]}\ndata:\n  tabular:\n    numeric_columns: []\n")
    rebuilt = export_cohort(
        small_cohort_2d,
        tmp_path / "other",
        changed,
        workers=1,
        log=lambda _: None,
        embed_notes=RecordingEmbedder(),
    )
    assert rebuilt["key"] != manifest["key"]
    assert "age" in manifest["tabular"]["continuous"] and "age" not in rebuilt["tabular"]["continuous"]


@pytest.mark.slow  # exports a synthetic cohort: validation, image preprocessing
def test_3d_export_gives_the_volume_and_its_middle_axial_slice(tmp_path):
    cohort = tmp_path / "c3d"
    synthesize_cohort(cohort, SynthOptions(n_cases=24, seed=5, dims=3, size=16, workers=1))
    config = tmp_path / "small3d.yaml"
    config.write_text(
        f"base: {DEFAULT_CONFIGS[3]}\ndata:\n  image:\n    shape: [16, 16, 16]\n    spacing: null\n"
    )
    export_cohort(
        cohort, tmp_path / "e", config, workers=1, log=lambda _: None, embed_notes=RecordingEmbedder()
    )
    export = PeerExport(tmp_path / "e")
    volumes, slices = export.image(3), export.image(2)
    assert volumes.shape == (24, 16, 16, 16) and slices.shape == (24, 16, 16)
    for i in range(24):
        np.testing.assert_array_equal(slices[i], volumes[i][:, :, 8])
    assert "middle axial slice" in export.manifest["image"]["image2d"]


# --------------------------------------------------------------------------------------------------------
# image statistics (the HAIM recipe's image features)


def test_middle_axial_slice_is_taken_along_the_last_axis():
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    np.testing.assert_array_equal(middle_axial_slice(volume), volume[:, :, 3])


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_statistics_of_a_blank_image_are_finite_and_empty(shape):
    stats = dict(zip(image_stat_names(), image_statistics(np.zeros(shape)), strict=True))
    assert all(np.isfinite(v) for v in stats.values())
    assert stats["std"] == 0 and stats["dense_components"] == 0 and stats["hist_00"] == 1.0


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_statistics_find_a_dense_region_and_where_it_is(shape):
    image = np.zeros(shape)
    centred = tuple(slice(s // 2 - 2, s // 2 + 2) for s in shape)
    image[centred] = 0.9
    stats = dict(zip(image_stat_names(), image_statistics(image), strict=True))
    assert stats["dense_components"] == 1
    assert stats["dense_largest_share"] == pytest.approx(4 ** len(shape) / image.size)
    assert stats["dense_largest_offset"] < 0.1
    corner = np.zeros(shape)
    corner[tuple(slice(0, 4) for _ in shape)] = 0.9
    far = dict(zip(image_stat_names(), image_statistics(corner), strict=True))
    assert far["dense_largest_offset"] > 0.5
    # intensity statistics do not depend on where the voxels are
    for name in ("mean", "std", "q50", "hist_10", "above_0.65"):
        assert far[name] == pytest.approx(stats[name])


@pytest.mark.slow  # exports a synthetic cohort: validation, image preprocessing
def test_a_further_test_cohort_is_exported_like_the_training_export(exported, small_cohort_2d, tmp_path):
    export, validated, _, manifest = exported
    like = export_cohort(
        small_cohort_2d,
        tmp_path / "extra",
        DEFAULT_CONFIGS[2],
        workers=1,
        log=lambda _: None,
        embed_notes=RecordingEmbedder(),
        like=export,
    )
    extra = PeerExport(tmp_path / "extra")
    # every usable case is a test case, whatever the cohort's own split column says
    assert set(extra.cases["split"]) == {Split.TEST.value}
    assert len(extra.index(Split.TEST)) == int(validated.cases["label"].notna().sum())
    # encoded as the training export: its image plan and its columns, so its model can score it
    assert like["image"]["settings"] == manifest["image"]["settings"]
    assert extra.category_columns == export.category_columns
    assert list(extra.tabular().columns) == list(export.tabular().columns)
    assert like["key"] != manifest["key"] and like["like"]["key"] == manifest["key"]
    extra.check_scored_like(export)
    with pytest.raises(ExportError, match="--like"):
        export.check_scored_like(extra)
