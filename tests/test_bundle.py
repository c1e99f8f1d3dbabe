"""Model bundles: exact round trip, no pickle, tampering and foreign schema versions refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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
    assert again.calibration.offset_ == bundle.calibration.offset_
    assert bundle.calibration.method == "platt"  # the default: a temperature and an offset
    summary = json.loads((tiny_run / "training.json").read_text())
    assert (summary["temperature"], summary["offset"]) == (
        bundle.calibration.temperature_,
        bundle.calibration.offset_,
    )
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
    # the training split summarised for drift reports, listed in the manifest like every other file
    assert "training_summary.json" in json.loads((tiny_run / "bundle" / MANIFEST).read_text())["files"]
    assert bundle.training_summary["n"] == int((inputs.split_of() == "train").sum())


@pytest.mark.parametrize(
    "victim", ["model.safetensors", "preprocessing.json", "calibration.json", "training_summary.json"]
)
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


# A pickle whose loading would call posix.system("true"): protocol 2 opcodes written out by hand.
MALICIOUS_PICKLE = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def _reseal(directory: Path) -> None:
    """Recompute the manifest after an edit, as someone who edits a bundle on purpose would."""
    from mmdx.bundle import sha256_file

    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["files"] = {name: sha256_file(directory / name) for name in manifest["files"]}
    (directory / MANIFEST).write_text(json.dumps(manifest))


def _edit_json(name: str, change):
    def edit(directory: Path) -> None:
        document = json.loads((directory / name).read_text())
        (directory / name).write_text(json.dumps(change(document)))

    return edit


def _set_threshold(value):
    def change(card: dict) -> dict:
        card["operating_point"]["threshold"] = value
        return card

    return _edit_json("card.json", change)


def _write(name: str, text: str):
    return lambda directory: (directory / name).write_text(text)


def _architecture(change):
    def edit(directory: Path) -> None:
        import yaml

        document = yaml.safe_load((directory / "config.yaml").read_text())
        change(document["architecture"])
        (directory / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    return edit


def _fusion_dim(dim: int):
    return _architecture(lambda arch: arch["fusion"].update(dim=dim))


def _hf_local_with_a_pickle(folder: Path):
    def edit(directory: Path) -> None:
        from mmdx.models.encoders.text import minilm_folder

        source = minilm_folder()
        folder.mkdir()
        for name in ("config.json", "tokenizer.json"):
            shutil.copy(source / name, folder / name)
        (folder / "pytorch_model.bin").write_bytes(MALICIOUS_PICKLE)
        _architecture(lambda arch: arch.update(text={"name": "hf_local", "path": str(folder)}))(directory)

    return edit


EDITS = {
    "threshold-2.0": (_set_threshold(2.0), "threshold"),
    "threshold-abc": (_set_threshold("abc"), "threshold"),
    "threshold-missing": (
        _edit_json("card.json", lambda card: {**card, "operating_point": None}),
        "threshold",
    ),
    "card-a-list": (_write("card.json", "[1, 2]"), "card.json"),
    "preprocessing-not-json": (_write("preprocessing.json", '{"features": ['), "preprocessing.json"),
    "preprocessing-a-list": (_write("preprocessing.json", "[]"), "preprocessing.json"),
    "preprocessing-wrong-types": (
        _edit_json("preprocessing.json", lambda p: {**p, "features": 7, "normaliser": "x"}),
        "preprocessing.json",
    ),
    "tokenizer-garbage": (_write("tokenizer.json", '{"model": 12}'), "tokenizer.json"),
    "tokenizer-not-json": (_write("tokenizer.json", "not json"), "tokenizer.json"),
    "config-not-a-mapping": (_write("config.yaml", "- 1\n- 2\n"), "config.yaml"),
    "fusion-dim-4096": (_fusion_dim(4096), "(?i)fusion"),
    "fusion-dim-huge": (_fusion_dim(10**12), "(?i)fusion"),
    "fusion-dim-text": (_fusion_dim("wide"), "(?i)fusion"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_and_resealed_bundle_gives_a_bundle_error(
    tiny_run: Path, tmp_path: Path, edit: str
) -> None:
    change, named = EDITS[edit]
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    change(copy)
    _reseal(copy)
    with pytest.raises(BundleError, match=named) as info:
        load_bundle(copy)
    assert "\n" not in str(info.value) and str(copy) in str(info.value)


def test_a_pickle_in_an_hf_local_folder_is_refused_in_one_line(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    _hf_local_with_a_pickle(tmp_path / "clinical-bert")(copy)
    _reseal(copy)
    with pytest.raises(BundleError, match="clinical-bert") as info:
        load_bundle(copy)
    assert "\n" not in str(info.value)


def _rewrite_preprocessing(bundle_dir: Path, change) -> None:
    """Edit preprocessing.json and re-sign it in the manifest, as an older or newer mmdx would have written it."""
    from mmdx.bundle import sha256_file

    path = bundle_dir / "preprocessing.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["files"]["preprocessing.json"] = sha256_file(path)
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))


def test_a_bundle_from_before_plans_loads_with_its_fixed_settings(
    tiny_run: Path, small_cohort_2d: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    plan = load_bundle(copy).preprocessing.image_plan

    def to_version_1(document: dict) -> None:
        document["schema_version"] = 1
        document.pop("image_fingerprint")
        image = document["image"]
        document["image"] = {k: image[k] for k in ("dims", "shape", "spacing", "window")}

    _rewrite_preprocessing(copy, to_version_1)
    old = load_bundle(copy)
    legacy = old.preprocessing.image_plan
    assert legacy.legacy and (legacy.dims, legacy.shape, legacy.spacing) == (
        plan.dims,
        plan.shape,
        plan.spacing,
    )
    # the synthetic images are CT: the old fixed HU window gives exactly what the fitted plan gives
    first = predict_dataset(old.model, prepare_inputs(old, small_cohort_2d, check_images=False).dataset)
    bundle = load_bundle(tiny_run)
    second = predict_dataset(
        bundle.model, prepare_inputs(bundle, small_cohort_2d, check_images=False).dataset
    )
    assert torch.allclose(torch.from_numpy(first.logits), torch.from_numpy(second.logits), atol=1e-5)


def test_a_bundle_from_a_newer_mmdx_fails_in_one_line(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    _rewrite_preprocessing(copy, lambda document: document.update(schema_version=4))
    with pytest.raises(BundleError) as info:
        load_bundle(copy)
    message = str(info.value)
    assert "schema version 4" in message and "upgrade mmdx" in message and "\n" not in message


def test_the_bundle_carries_the_image_plan_it_was_trained_with(tiny_run: Path) -> None:
    bundle = load_bundle(tiny_run)
    plan = bundle.image_plan
    assert plan is not None and plan == bundle.preprocessing.image_plan and not plan.legacy
    assert plan.dims == 2 and len(plan.shape) == 2  # fitted to the 2D cohort's training images
    assert bundle.preprocessing.image_fingerprint["n_images"] > 0


def test_the_identity_is_read_without_the_model_and_only_from_a_verified_bundle(
    tiny_run: Path, tmp_path: Path
) -> None:
    from mmdx.bundle import read_bundle_identity, sha256_file

    identity = read_bundle_identity(tiny_run)  # a run directory: its bundle/
    bundle = load_bundle(tiny_run)
    assert identity.name == bundle.config.name and identity.version == bundle.version
    assert identity.card == bundle.card
    assert identity.manifest_sha256 == sha256_file(tiny_run / "bundle" / MANIFEST)
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", copy)
    (copy / "card.json").write_text("{}")
    with pytest.raises(BundleError, match="card.json"):
        read_bundle_identity(copy)


def test_a_run_with_negation_marking_round_trips_and_explains_its_negated_phrases(
    small_cohort_2d: Path, tmp_path: Path, tiny
) -> None:
    from mmdx.explain.artifacts import read_case
    from mmdx.models.encoders.text import NegationAwareEmbedding
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.explain import explain_run
    from mmdx.workflows.train import train_run

    _, make_config = tiny
    out = tmp_path / "negation"
    train_run(make_config("train.epochs=1", "data.text.negation=true"), small_cohort_2d, out, progress=False)
    evaluate_run(out)
    bundle = load_bundle(out)
    assert bundle.preprocessing.text_negation
    assert isinstance(bundle.model.encoders["text"].embedding_layer, NegationAwareEmbedding)
    inputs = prepare_inputs(bundle, small_cohort_2d, check_images=False)
    vocabulary = bundle.preprocessing.tokenizer.get_vocab_size()
    assert (inputs.dataset.table.text_ids >= vocabulary).any()
    first = predict_dataset(bundle.model, inputs.dataset)
    again = load_bundle(out / "bundle")
    second = predict_dataset(again.model, prepare_inputs(again, small_cohort_2d, check_images=False).dataset)
    assert torch.equal(torch.from_numpy(first.logits), torch.from_numpy(second.logits))
    table = inputs.dataset.table
    negated_case = next(
        c
        for c, ids, text in zip(table.case_ids, table.text_ids, table.texts, strict=True)
        if text and (ids >= vocabulary).any()
    )
    explain_run(out, cases=[negated_case], n_steps=4, check_cases=0, workers=1, image_method="ig")
    document = read_case(out / "explanations", negated_case).document
    phrases = document["phrases"]
    assert any(p["negated"] for p in phrases) and all(np.isfinite(p["attribution"]) for p in phrases)
