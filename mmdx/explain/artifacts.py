"""The ``explanations/`` folder of a run (Contract 3): what is written, and how to read it back.

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
folder that replaces the previous ``explanations/`` only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mmdx.errors import MmdxError
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


def read_index(explanations_dir: str | Path) -> dict:
    """The ``index.json`` of an explanations folder (raises with the command to run when absent)."""
    path = Path(explanations_dir) / INDEX
    if not path.is_file():
        raise MmdxError(f"{path} is missing; run 'mmdx explain RUN' first")
    return json.loads(path.read_text(encoding="utf-8"))


def read_case(explanations_dir: str | Path, case_id: str, method_suffix: str = "") -> dict:
    """One case's ``explanation.json`` plus ``image_model_grid`` (the float32 array) when there is one."""
    folder = Path(explanations_dir) / case_folder_name(case_id)
    path = folder / f"explanation{method_suffix}.json"
    if not path.is_file():
        raise MmdxError(
            f"no explanation for case {case_id!r} in {explanations_dir}; "
            f"run 'mmdx explain RUN --cases {case_id}'"
        )
    document = json.loads(path.read_text(encoding="utf-8"))
    grid_file = document.get("files", {}).get("image_model_grid")
    document["image_model_grid"] = np.load(folder / grid_file, allow_pickle=False) if grid_file else None
    return document
