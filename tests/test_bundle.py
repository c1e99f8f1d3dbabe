"""Model bundles: exact round trip, no pickle, tampering and foreign schema versions refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mmdx.bundle import MANIFEST, load_bundle
from mmdx.errors import BundleError
from mmdx.predict import prepare_inputs
from mmdx.training.inference import predict_dataset


def test_round_trip_gives_identical_predictions(tiny_run: Path, small_cohort_2d: Path) -> None:
    bundle = load_bundle(tiny_run)  # a run directory resolves to its bundle/
    inputs = prepare_inputs(bundle, small_cohort_2d, check_images=False)
    first = predict_dataset(bundle.model, inputs.dataset)
    again = load_bundle(tiny_run / "bundle")
    second = predict_dataset(again.model, prepare_inputs(again, small_cohort_2d, check_images=False).dataset)
    assert first.case_ids == second.case_ids
    assert torch.equal(torch.from_numpy(first.logits), torch.from_numpy(second.logits))
    assert again.calibration.temperature_ == bundle.calibration.temperature_
    assert again.preprocessing.tokenizer.to_str() == bundle.preprocessing.tokenizer.to_str()
    assert 0 < bundle.threshold < 1 and len(bundle.version) == 16
    files = {p.name for p in (tiny_run / "bundle").iterdir()}
    assert {
        "model.safetensors",
        "config.yaml",
        "preprocessing.json",
        "tokenizer.json",
        "calibration.json",
        "card.json",
        MANIFEST,
    } <= files
    assert not any(
        p.suffix in {".pt", ".pth", ".pkl", ".bin", ".ckpt"} for p in (tiny_run / "bundle").iterdir()
    )


@pytest.mark.parametrize("victim", ["model.safetensors", "preprocessing.json", "calibration.json"])
def test_tampered_file_is_refused(tiny_run: Path, tmp_path: Path, victim: str) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / victim).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{victim} does not match its checksum"):
        load_bundle(copy)


def test_other_schema_version_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["schema_version"] = 99
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema version 99"):
        load_bundle(copy)


def test_missing_pieces_are_named(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nothing")
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    (copy / "card.json").unlink()
    with pytest.raises(BundleError, match="card.json is listed in the manifest but missing"):
        load_bundle(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(copy)
