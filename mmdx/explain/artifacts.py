"""The ``explanations/`` folder of a run: its format, its one writer and its one reader.

::

    RUN/explanations/
        index.json                      explanation_version, created, settings, one entry per case
        summary.json                    faithfulness, randomisation, convergence deltas, ground-truth scores
        <case_id>/explanation.json      the case's attributions (schema below)
        <case_id>/image_attribution.nii.gz            map on the original image grid (image's affine)
        <case_id>/image_attribution_model_grid.npy    float32 map on the model's grid
        <case_id>/explanation_occlusion.json, ..._occlusion.nii.gz, ..._occlusion.npy   a second method

``explanation.json``: ``case_id``, ``split``, ``label``, ``probability`` (calibrated, positive class),
``logit``, ``predicted``, ``threshold``, ``gates`` and ``presence`` (per modality), ``missing_modalities``,
``modality_totals``, ``shapley`` (``image``, ``tabular``, ``text``, ``base_value`` = f(none),
``full_value`` = f(all present), ``subsets``), ``tabular`` (``key, display, kind, value, unit, missing,
reference_low, reference_high, abnormal, attribution``), ``tokens`` (``text, start, end, attribution``;
character offsets into the joined note text), ``method``, ``n_steps``, ``convergence_delta``,
``output``/``baseline_output`` (the explained calibrated logit and its baseline value), ``files`` and
``explanation_version``.

The ``explanation_version`` is a hash of the model version, the method(s) and every setting that changes
the numbers, so a reader can tell whether two explanations are comparable. Files are written to a fresh
folder that replaces the previous ``explanations/`` only when complete. Readers go through
:class:`mmdx.run.RunPaths`, which calls :func:`read_index`, :func:`read_summary` and :func:`read_case`;
each raises :class:`ExplanationNotFound` for a missing file and :class:`ExplanationUnreadable` for a damaged
one, so a caller can tell "not explained" from "broken". ``index.json`` follows
``data_schemas/explanations_index.schema.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmdx.errors import MmdxError

if TYPE_CHECKING:
    from mmdx.explain.attribution import CaseExplanation

EXPLANATION_SCHEMA_VERSION = 1
INDEX = "index.json"
SUMMARY = "summary.json"

_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def explanation_version(model_version: str, methods: list[str], settings: Mapping[str, Any]) -> str:
    """16 hex digits identifying (model, methods, settings)."""
    blob = json.dumps(
        {
            "schema": EXPLANATION_SCHEMA_VERSION,
            "model": model_version,
            "methods": methods,
            "settings": settings,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def case_folder_name(case_id: str) -> str:
    """The case's folder name: the id itself when it is a safe file name, else a readable hashed form."""
    if _SAFE.match(case_id) and case_id not in (".", ".."):
        return case_id
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", case_id).strip(".") or "case"
    return f"{cleaned[:40]}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}"


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_json(dict(document)), indent=1, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)


def write_case(
    folder: Path,
    explanation: CaseExplanation,
    shapley: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
    version: str,
    suffix: str = "",
) -> dict[str, str]:
    """Write one case's files for one method into ``folder``; returns the written files by kind.

    ``suffix`` ("" for the primary method, ``"_occlusion"`` for a second one) is appended to every name.
    ``extra``: fields from the run (``split``, ``label``, ``predicted``, ``threshold``).
    """
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # patient-derived, like the rest of the run
    files: dict[str, str] = {}
    if explanation.image_map is not None:
        name = f"image_attribution_model_grid{suffix}.npy"
        np.save(folder / name, explanation.image_map.astype(np.float32), allow_pickle=False)
        files["image_model_grid"] = name
    if explanation.image_original is not None and explanation.image_grid is not None:
        name = f"image_attribution{suffix}.nii.gz"
        image = nib.Nifti1Image(
            explanation.image_original.astype(np.float32), explanation.image_grid.original_affine
        )
        image.set_qform(explanation.image_grid.original_affine, code=1)
        image.set_sform(explanation.image_grid.original_affine, code=1)
        image.header["descrip"] = b"mmdx attribution"
        nib.save(image, str(folder / name))
        files["image_original_grid"] = name
    document = {
        **explanation.to_dict(),
        **dict(extra),
        "shapley": dict(shapley) if shapley is not None else None,
        "files": files,
        "explanation_version": version,
        "schema_version": EXPLANATION_SCHEMA_VERSION,
    }
    name = f"explanation{suffix}.json"
    write_json(folder / name, document)
    files["explanation"] = name
    return files


class ExplanationWriter:
    """Writes a run's explanations into a staging folder and swaps it in on :meth:`commit`."""

    def __init__(self, explanations_dir: Path) -> None:
        self.target = Path(explanations_dir)
        self.staging = self.target.with_name(f".{self.target.name}.partial-{os.getpid()}")
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True, mode=0o700)

    def case_folder(self, case_id: str) -> Path:
        return self.staging / case_folder_name(case_id)

    def commit(self, index: Mapping[str, Any], summary: Mapping[str, Any]) -> Path:
        write_json(self.staging / INDEX, index)
        write_json(self.staging / SUMMARY, summary)
        previous = self.target.with_name(f".{self.target.name}.previous-{os.getpid()}")
        if self.target.exists():
            os.replace(self.target, previous)
        os.replace(self.staging, self.target)
        if previous.exists():
            shutil.rmtree(previous)
        return self.target

    def abort(self) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging)


class ExplanationNotFound(MmdxError):
    """The explanations folder, or the file of one case, does not exist (nothing was explained)."""


class ExplanationUnreadable(MmdxError):
    """A file of the explanations folder exists but cannot be used; ``path`` and ``why`` say which and why."""

    def __init__(self, path: Path, why: str, hint: str = "run 'mmdx explain RUN' again") -> None:
        super().__init__(f"{path} cannot be read ({why}); {hint}")
        self.path = path
        self.why = why


@dataclass(frozen=True)
class CaseFiles:
    """One case's explanation as read back: ``document`` is the parsed ``explanation.json``;
    ``image_map`` the ``[*model_shape]`` float32 attribution per model voxel, or None without an image."""

    document: dict[str, Any]
    image_map: np.ndarray | None


def _read_document(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ExplanationNotFound(f"{path} is missing; run 'mmdx explain RUN' first")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExplanationUnreadable(path, f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ExplanationUnreadable(path, f"expected a JSON object, got {type(document).__name__}")
    return document


def read_index(explanations_dir: str | Path) -> dict[str, Any]:
    """The ``index.json`` of an explanations folder: version, settings and one entry per explained case."""
    return _read_document(Path(explanations_dir) / INDEX)


def read_summary(explanations_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of an explanations folder: faithfulness, sanity and ground-truth checks."""
    return _read_document(Path(explanations_dir) / SUMMARY)


def case_file(explanations_dir: str | Path, case_id: str, name: str) -> Path:
    """The path of a file that one case's ``explanation.json`` lists (``files``), checked to be a plain
    name inside the case's folder and to exist; raises :class:`ExplanationUnreadable` otherwise."""
    folder = Path(explanations_dir) / case_folder_name(case_id)
    path = folder / str(name)
    if Path(str(name)).name != str(name) or str(name) in ("", ".", "..") or not path.is_file():
        raise ExplanationUnreadable(folder / "explanation.json", f"the file {name!r} it lists is missing")
    return path


def read_case(explanations_dir: str | Path, case_id: str, method_suffix: str = "") -> CaseFiles:
    """One case's ``explanation{suffix}.json`` and its model-grid image map, checked: the document is an
    object about ``case_id``, and the map, when listed, is a finite 2D or 3D array beside it."""
    folder = Path(explanations_dir) / case_folder_name(case_id)
    path = folder / f"explanation{method_suffix}.json"
    if not path.is_file():
        raise ExplanationNotFound(
            f"no explanation for case {case_id!r} in {explanations_dir}; "
            f"run 'mmdx explain RUN --cases {case_id}'"
        )
    document = _read_document(path)
    if str(document.get("case_id")) != case_id:
        raise ExplanationUnreadable(path, f"it describes case {document.get('case_id')!r}, not {case_id!r}")
    files = document.get("files") if isinstance(document.get("files"), dict) else {}
    name = files.get("image_model_grid")
    if not name:
        return CaseFiles(document, None)
    map_path = folder / str(name)
    if Path(str(name)).name != str(name) or not map_path.is_file():
        raise ExplanationUnreadable(path, f"its image map {name!r} is missing")
    try:
        image_map = np.load(map_path, allow_pickle=False).astype(np.float32, copy=False)
    except (OSError, ValueError) as exc:
        raise ExplanationUnreadable(map_path, f"the image map cannot be read ({exc})") from None
    if image_map.ndim not in (2, 3) or not np.all(np.isfinite(image_map)):
        raise ExplanationUnreadable(
            map_path, f"the image map has shape {image_map.shape} or non-finite values"
        )
    return CaseFiles(document, image_map)
