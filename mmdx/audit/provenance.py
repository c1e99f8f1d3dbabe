"""The provenance section: exactly what the report describes and what produced it.

mmdx version and source commit, package versions, the resolved config, seeds, the cohort's and the split's
fingerprints (as recorded at training, and recomputed now where possible, so that a changed cohort shows),
SHA-256 digests of the run artifacts the report was computed from, and the hardware of training and audit.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

import mmdx
from mmdx.audit.sections import AUDIT_SECTIONS, AuditInputs, Section, SectionSpec
from mmdx.bundle import Bundle, sha256_file
from mmdx.data.splits import split_fingerprint
from mmdx.data.validation import fingerprint_directory
from mmdx.errors import MmdxError
from mmdx.keys import Keys
from mmdx.run import RunPaths

#: Distributions whose versions can change a number of the report.
PACKAGES: tuple[str, ...] = (
    "torch",
    "monai",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "fairlearn",
    "captum",
    "pydicom",
    "nibabel",
    "tokenizers",
    "transformers",
    "safetensors",
    "sqlalchemy",
    "matplotlib",
    "jinja2",
    "jsonschema",
)
UNKNOWN = "unknown"
_GIT_TIMEOUT_S = 10


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution; None when it is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(source: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(source), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def source_commit(source: Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git checkout mmdx runs from; ``"unknown"`` and None when mmdx is not
    run from a checkout (an installed package), or git is missing.

    ``dirty`` is True when tracked files differ from the commit, so the commit alone does not pin the code.
    """
    source = source or Path(mmdx.__file__).resolve().parents[1]
    top = _git(source, "rev-parse", "--show-toplevel")
    # a package installed inside some other repository (a venv in a project) must not report that one
    if top is None or not (Path(top) / "mmdx" / "__init__.py").is_file():
        return {"commit": UNKNOWN, "dirty": None}
    commit = _git(source, "rev-parse", "HEAD")
    status = _git(source, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or UNKNOWN, "dirty": None if status is None else bool(status)}


def this_machine() -> dict[str, Any]:
    """The hardware and platform the audit runs on."""
    import torch

    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def artifact_digests(run: RunPaths) -> dict[str, str | None]:
    """SHA-256 of each run file the report reads (None for those absent), keyed by path in the run."""
    files = run.artifacts()
    return {name: sha256_file(path) if path.is_file() else None for name, path in files.items()}


def preprocessing_provenance(bundle: Bundle) -> dict[str, Any]:
    """The bundle's image preprocessing plan and the fingerprint of the training images it was fitted to
    (``None`` values for a model without images, or a bundle written before plans existed)."""
    plan = bundle.image_plan
    return {
        "image_plan": None if plan is None else plan.to_dict(),
        "description": None if plan is None else plan.describe(),
        "image_fingerprint": bundle.preprocessing.image_fingerprint,
    }


def provenance_section(
    run: RunPaths,
    bundle: Bundle,
    frame: pd.DataFrame,
    cohort_dir: str | Path | None,
    seeds: dict[str, Any],
    created: datetime | None = None,
) -> dict[str, Any]:
    """Versions, config, seeds, fingerprints, artifact digests and hardware of the run and of this audit.

    ``cohort_dir``: the cohort to fingerprint now (default: the one recorded in the card); when it is not
    reachable the recorded fingerprint stands alone and ``cohort_now`` says why.
    """
    card = bundle.card
    cohort = card.get("cohort") or {}
    recorded_split = cohort.get("split_fingerprint")
    split_now = split_fingerprint(frame[Keys.CASE_ID].astype(str), frame[Keys.SPLIT].astype(str))
    chosen = cohort_dir if cohort_dir is not None else cohort.get("path")
    if chosen is not None and Path(chosen).is_dir():
        fingerprint_now = fingerprint_directory(Path(chosen))
        cohort_now = {
            "path": str(chosen),
            "fingerprint": fingerprint_now,
            "matches_training": fingerprint_now == cohort.get("fingerprint"),
            "reason": None,
        }
    else:
        cohort_now = {
            "path": None if chosen is None else str(chosen),
            "fingerprint": None,
            "matches_training": None,
            "reason": "the cohort directory is not reachable from here; pass --cohort DIR to fingerprint it",
        }
    return {
        "created": (created or datetime.now(UTC)).isoformat(timespec="seconds"),
        "mmdx_version": mmdx.__version__,
        "git": source_commit(),
        "packages": package_versions(),
        "model": {
            "model_version": bundle.version,
            "trained_with_mmdx": card.get("mmdx_version"),
            "trained": card.get("created"),
            "parameters": (card.get("parameters") or {}).get("total"),
        },
        "config": bundle.config.to_dict(),
        "seeds": seeds,
        "cohort": {
            "name": cohort.get("name"),
            "version": cohort.get("version"),
            "fingerprint": cohort.get("fingerprint"),
            "split_fingerprint": recorded_split,
        },
        "cohort_now": cohort_now,
        "split_now": {
            "fingerprint": split_now,
            # training fingerprints the cohort's usable cases; the predictions hold the same cases when the
            # run was evaluated on its own cohort
            "matches_training": split_now == recorded_split if recorded_split else None,
        },
        "training_history": training_history(run),
        "preprocessing": preprocessing_provenance(bundle),
        "artifacts": artifact_digests(run),
        "hardware": {"training": card.get("environment") or {}, "audit": this_machine()},
    }


def training_history(run: RunPaths) -> list[dict[str, Any]]:
    """Per training epoch, from ``training.json``: the stage, the fused validation AUROC and each encoder's
    own validation AUROC (empty when the run has no summary; runs from before branch scores have none)."""
    try:
        summary = run.read_training_summary()
    except MmdxError:  # damaged: the artifact digests show it
        return []
    history = ((summary or {}).get("result") or {}).get("history") or []
    return [
        {
            "epoch": int(h.get("epoch", 0)),
            "stage": str(h.get("stage", "fused")),
            "val_auroc": h.get("val_auroc"),
            "branch_val_auroc": dict(h.get("branch_val_auroc") or {}),
        }
        for h in history
    ]


def _explanation_seed(run: RunPaths) -> int | None:
    try:
        summary = run.read_explanation_summary()
    except MmdxError:  # absent or damaged: the explanations section says so
        return None
    for section in (summary.get("methods") or {}).values():
        seed = (section.get("randomisation") or {}).get("seed")
        if seed is not None:
            return int(seed)
    return None


def _build(inputs: AuditInputs) -> dict[str, Any]:
    seed = inputs.options.seed
    return provenance_section(
        inputs.run,
        inputs.bundle,
        inputs.frame,
        inputs.cohort_dir,
        seeds={
            "training": inputs.bundle.card.get("seed"),
            "bootstrap": seed,
            "robustness": seed,
            "explanations": _explanation_seed(inputs.run),
        },
        created=inputs.created,
    )


AUDIT_SECTIONS.register(SectionSpec(Section.PROVENANCE, "provenance (fingerprinting the cohort)", _build))
