"""The model bundle: everything needed to rebuild a trained model exactly, and no pickle.

A bundle is a directory:

=====================  ===============================================================================
``model.safetensors``  the weights
``config.yaml``        the fully resolved experiment config plus the exact encoder/fusion arguments
``preprocessing.json`` the image preprocessing plan (grid, intensity per modality) with the fingerprint of
                       the training images it was fitted to, tabular features, units and normaliser
                       statistics, text settings (:class:`mmdx.data.dataset.Preprocessing`)
``tokenizer.json``     the note tokenizer (when the model reads text)
``calibration.json``   the calibration fitted on the validation split (method, temperature, offset)
``card.json``          data fingerprint, metrics, versions, seed, operating threshold, intended use
``training_summary.json`` the training split summarised without rows (prevalence, per-feature quantile bins,
                       missingness, presence patterns, note vocabulary, image fingerprint;
                       :mod:`mmdx.data.drift`), for drift reports at other sites; absent from bundles
                       written before it existed
``manifest.json``      bundle schema version and the SHA-256 of every file above
=====================  ===============================================================================

:func:`load_bundle` verifies every checksum before it reads anything, so a tampered or replaced file (a
pickle renamed to ``model.safetensors``, say) is refused without being parsed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from mmdx import __version__
from mmdx.config import Config, config_from_dict
from mmdx.data.dataset import Preprocessing
from mmdx.data.plan import ImagePlan
from mmdx.errors import BundleError, MmdxError
from mmdx.keys import Modality
from mmdx.training.calibration import TemperatureScaler

BUNDLE_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
#: The training cohort's summary (optional: bundles written before it existed lack it).
TRAINING_SUMMARY = "training_summary.json"


@dataclass
class Bundle:
    """A loaded bundle. ``model`` is in eval mode on the CPU."""

    path: Path
    model: torch.nn.Module
    config: Config
    architecture: dict
    preprocessing: Preprocessing
    calibration: TemperatureScaler
    card: dict
    #: the training split's summary (``training_summary.json``), None for a bundle written without one
    training_summary: dict | None = None

    @property
    def threshold(self) -> float:
        """The operating threshold on calibrated probabilities, chosen on the validation split."""
        return float(self.card.get("operating_point", {}).get("threshold", 0.5))

    @property
    def image_plan(self) -> ImagePlan | None:
        """The image preprocessing plan fitted at training, applied as it is to every cohort the model
        predicts (never refitted); ``None`` for a model without images. A bundle written before plans
        existed gives its fixed settings as a legacy plan."""
        if Modality.IMAGE.value not in self.preprocessing.modalities:
            return None
        return self.preprocessing.image_plan

    @property
    def version(self) -> str:
        """A short identifier of this exact model (the weights' checksum)."""
        return str(self.card.get("model_version", "unknown"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_bundle(
    directory: str | Path,
    model: torch.nn.Module,
    config: Config,
    preprocessing: Preprocessing,
    calibration: TemperatureScaler,
    card: dict,
    training_summary: dict | None = None,
) -> Path:
    """Write a bundle to ``directory`` (created owner-only); returns its path. ``training_summary``
    (:func:`mmdx.data.drift.summarise_cohort` of the training split) is written when given."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    architecture = getattr(model, "config", None)
    if not architecture:
        raise BundleError("the model carries no build arguments (model.config); build it with build_model")
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(directory / WEIGHTS), metadata={"format": "pt", "mmdx": __version__})
    document = {"schema_version": BUNDLE_SCHEMA_VERSION, **config.to_dict(), "architecture": architecture}
    (directory / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    preprocessing.save(directory)
    calibration.save(directory / "calibration.json")
    card = {**card, "model_version": sha256_file(directory / WEIGHTS)[:16], "mmdx_version": __version__}
    (directory / "card.json").write_text(json.dumps(card, indent=1, default=str), encoding="utf-8")
    if training_summary is not None:
        (directory / TRAINING_SUMMARY).write_text(json.dumps(training_summary), encoding="utf-8")
    files = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST)
    manifest = {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "mmdx_version": __version__,
        "files": {name: sha256_file(directory / name) for name in files},
    }
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)
    return directory


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise BundleError(f"{directory} is not an mmdx bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(
            f"{path} is not valid JSON ({type(exc).__name__}: {exc}); the bundle is damaged"
        ) from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != BUNDLE_SCHEMA_VERSION:
        raise BundleError(
            f"{directory} is a bundle of schema version {version!r}, made by mmdx "
            f"{manifest.get('mmdx_version', '?') if isinstance(manifest, dict) else '?'}; this mmdx ({__version__}) "
            f"reads schema version {BUNDLE_SCHEMA_VERSION} only. Load it with the mmdx version that wrote it, "
            "or retrain."
        )
    return manifest


def verify_bundle(directory: str | Path) -> dict:
    """Check the manifest and every file's SHA-256; returns the manifest or raises :class:`BundleError`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"bundle not found: {directory}")
    manifest = _read_manifest(directory)
    files = manifest.get("files", {})
    for required in (WEIGHTS, "config.yaml", "preprocessing.json", "calibration.json", "card.json"):
        if required not in files:
            raise BundleError(f"{directory}: the manifest does not list {required}; the bundle is incomplete")
    for name, expected in files.items():
        path = directory / name
        if Path(name).name != name or not path.is_file():
            raise BundleError(f"{directory}: {name} is listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(
                f"{path} does not match its checksum in {MANIFEST} (expected {expected[:12]}…, found "
                f"{actual[:12]}…): the file was modified or replaced after the bundle was written. "
                "Refusing to load it; restore the original bundle."
            )
    return manifest


@dataclass(frozen=True)
class BundleIdentity:
    """Who a bundle is, read without building its model: the experiment's ``name``, the ``card`` and the
    SHA-256 of the manifest (which pins every file of the bundle)."""

    path: Path
    name: str
    card: dict
    manifest_sha256: str

    @property
    def version(self) -> str:
        return str(self.card.get("model_version", "unknown"))


def read_bundle_identity(path: str | Path) -> BundleIdentity:
    """The identity of a bundle (or of a run's ``bundle/``); every checksum is verified first and a card
    or config that cannot be read raises :class:`BundleError` naming the file."""
    directory = resolve_bundle_dir(path)
    verify_bundle(directory)
    try:
        card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
        if not isinstance(card, dict):
            raise TypeError(f"expected an object, got {type(card).__name__}")
    except Exception as exc:
        raise _part_error(directory, "card.json", exc) from None
    try:
        document = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise TypeError(f"expected a mapping, got {type(document).__name__}")
    except Exception as exc:
        raise _part_error(directory, "config.yaml", exc) from None
    name = str(document.get("name") or card.get("name") or directory.parent.name)
    return BundleIdentity(directory, name, card, sha256_file(directory / MANIFEST))


def resolve_bundle_dir(path: str | Path) -> Path:
    """A bundle directory, or a run directory holding one in ``bundle/``."""
    path = Path(path)
    if (path / "bundle" / MANIFEST).is_file() and not (path / MANIFEST).is_file():
        return path / "bundle"
    return path


def _part_error(directory: Path, part: str, exc: BaseException) -> BundleError:
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    detail = detail if len(detail) <= 300 else detail[:297] + "..."
    return BundleError(
        f"{directory}: {part} cannot be used ({detail}); the bundle was edited or damaged after training: "
        "restore the original bundle or retrain"
    )


def _check_threshold(card: object, directory: Path) -> None:
    """The operating threshold must be a probability: a number in [0, 1]."""
    point = card.get("operating_point") if isinstance(card, dict) else None
    value = point.get("threshold") if isinstance(point, dict) else None
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise BundleError(
            f"{directory}: card.json: the operating threshold (operating_point.threshold) is {value!r}; it must "
            "be a probability between 0 and 1. The bundle was edited after training: restore it or retrain"
        )


#: Larger than any layer width, vocabulary or feature count of a model mmdx builds.
MAX_ARCHITECTURE_SIZE = 1 << 22


def _check_architecture_sizes(architecture: dict, directory: Path) -> None:
    """Refuse an architecture number no model has (an edited fusion width of 10^12, say) by its key."""

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and abs(value) > MAX_ARCHITECTURE_SIZE
        ):
            raise BundleError(
                f"{directory}: config.yaml: {where} is {value}, larger than any size a model of mmdx has "
                f"({MAX_ARCHITECTURE_SIZE:,}); the bundle was edited after training: restore it or retrain"
            )

    walk(architecture, "architecture")


def _check_tokenizer(directory: Path, manifest: dict) -> None:
    """The tokenizer named by preprocessing.json: a file of the bundle (listed in the manifest) that the
    ``tokenizers`` library reads."""
    try:
        state = json.loads((directory / "preprocessing.json").read_text(encoding="utf-8"))
        name = state["text"]["tokenizer"]
    except Exception as exc:
        raise _part_error(directory, "preprocessing.json", exc) from None
    if not name:
        return
    if not isinstance(name, str) or name not in manifest.get("files", {}):
        raise _part_error(
            directory,
            "preprocessing.json",
            ValueError(f"text.tokenizer {name!r} is not a file of the bundle"),
        )
    try:
        Tokenizer.from_file(str(directory / name))
    except Exception as exc:
        raise _part_error(directory, name, exc) from None


def _check_architecture_fits_weights(architecture: dict, weights: Path, directory: Path) -> None:
    """Compare the parameter shapes the architecture implies with those stored in the weights file, before
    the model is built for real: a fusion or encoder size edited to a huge value is refused without
    allocating it. The probe is built on PyTorch's meta device (shapes without storage); encoders that load
    pretrained weights cannot be built there and are compared after building instead."""
    from mmdx.models.ensemble import build_from_architecture

    try:
        with torch.device("meta"):
            probe = build_from_architecture(architecture)
    except (MmdxError, TypeError, ValueError) as exc:
        raise _part_error(directory, "config.yaml (architecture)", exc) from None
    except RuntimeError as exc:
        if "meta" in str(exc):
            return  # a pretrained encoder: checked by load_state_dict after the real build
        raise _part_error(directory, "config.yaml (architecture)", exc) from None
    expected = {name: tuple(t.shape) for name, t in probe.state_dict().items()}
    try:
        with safe_open(str(weights), framework="pt") as handle:
            stored = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise _part_error(directory, WEIGHTS, exc) from None
    differing = sorted(n for n in expected.keys() & stored.keys() if expected[n] != stored[n])
    missing, unexpected = sorted(expected.keys() - stored.keys()), sorted(stored.keys() - expected.keys())
    if differing or missing or unexpected:
        shown = [
            f"{n}: {list(expected[n])} in config.yaml, {list(stored[n])} in {WEIGHTS}" for n in differing[:3]
        ]
        shown += [f"{n} not in {WEIGHTS}" for n in missing[:3]] + [
            f"{n} not in config.yaml" for n in unexpected[:3]
        ]
        raise BundleError(
            f"{directory}: the architecture in config.yaml does not fit the weights ({'; '.join(shown)}); the "
            "bundle was edited after training: restore it or retrain"
        )


def load_bundle(path: str | Path) -> Bundle:
    """Rebuild the exact model, preprocessing and calibration of a bundle (or of a run's ``bundle/``).

    Every file is checked against the manifest first; a file that still does not make sense (a bundle edited
    and its manifest recomputed) raises :class:`BundleError` naming the file, never another exception.
    """
    from mmdx.models.ensemble import build_from_architecture

    directory = resolve_bundle_dir(path)
    manifest = verify_bundle(directory)
    try:
        document = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("architecture"), dict):
            raise ValueError("expected a mapping with an 'architecture' mapping")
        architecture = document.pop("architecture")
        document.pop("schema_version", None)
        config = config_from_dict(document, source=str(directory / "config.yaml"))
    except Exception as exc:
        raise _part_error(directory, "config.yaml", exc) from None
    _check_tokenizer(directory, manifest)
    try:
        preprocessing = Preprocessing.load(directory)
    except Exception as exc:
        raise _part_error(directory, "preprocessing.json", exc) from None
    try:
        calibration = TemperatureScaler.from_dict(json.loads((directory / "calibration.json").read_text()))
    except Exception as exc:
        raise _part_error(directory, "calibration.json", exc) from None
    try:
        card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
    except Exception as exc:
        raise _part_error(directory, "card.json", exc) from None
    if not isinstance(card, dict):
        raise _part_error(directory, "card.json", TypeError(f"expected an object, got {type(card).__name__}"))
    _check_threshold(card, directory)
    _check_architecture_sizes(architecture, directory)
    _check_architecture_fits_weights(architecture, directory / WEIGHTS, directory)
    try:
        model = build_from_architecture(architecture)
    except Exception as exc:
        raise _part_error(directory, "config.yaml (architecture)", exc) from None
    try:
        state = load_file(str(directory / WEIGHTS))
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise _part_error(directory, WEIGHTS, exc) from None
    if missing or unexpected:
        raise BundleError(
            f"{directory}: the weights do not fit the architecture in config.yaml "
            f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})"
        )
    model.eval()
    summary = _read_training_summary(directory, manifest)
    return Bundle(directory, model, config, architecture, preprocessing, calibration, card, summary)


def _read_training_summary(directory: Path, manifest: dict) -> dict | None:
    """The training summary listed in the manifest (checked already), or None when the bundle has none."""
    if TRAINING_SUMMARY not in manifest.get("files", {}):
        return None
    try:
        summary = json.loads((directory / TRAINING_SUMMARY).read_text(encoding="utf-8"))
        if not isinstance(summary, dict) or not isinstance(summary.get("features"), dict):
            raise TypeError("expected an object with 'features'")
    except Exception as exc:
        raise _part_error(directory, TRAINING_SUMMARY, exc) from None
    return summary
