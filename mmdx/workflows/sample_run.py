"""A small run to try the dashboard on: synthesise a cohort, train a model that trains in seconds, and
evaluate it. The dashboard's tests and its benchmark build their runs with :func:`build_sample_run`.

:func:`explained_copy` copies a built run (bundle and predictions; not its checkpoints, explanations or review
store) and explains chosen cases of it for real, so that several users of one trained run (the export tests
and benchmark) each get explanations of their own; :func:`cases_with_image` picks those cases by the kind of
their image.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mmdx.run import RunPaths

#: what :func:`image_kinds` calls a case's image
IMAGE_KINDS = ("dicom", "nifti", "none")


def sample_config(dims: int = 2, size: int = 16, name: str = "sample") -> dict[str, Any]:
    """A config document for a model that trains in seconds (16 px images, small encoders, one epoch)."""
    shape = [size] * dims
    return {
        "name": name,
        "seed": 0,
        "data": {
            "image": {"dims": dims, "shape": shape, "spacing": None, "window": [-1000.0, 400.0]},
            "text": {"vocab_size": 300, "max_length": 48},
            # no image cache: warming it forks worker processes, which can deadlock in a process that
            # already runs threads (a test session or benchmark that started Streamlit's AppTest)
            "cache": {"mode": "none"},
            "loader": {"batch_size": 32},
        },
        "model": {
            "image": {"name": "small_cnn", "channels": [4, 8], "out_dim": 16},
            "tabular": {"name": "ft_transformer", "dim": 16, "depth": 1, "heads": 2},
            "text": {"name": "transformer", "dim": 16, "depth": 1, "heads": 2},
            "fusion": {"name": "gated_attention", "dim": 16},
        },
        "train": {"epochs": 1, "min_epochs": 1, "lr": 0.002, "device": "cpu", "threads": 2},
    }


def build_sample_run(
    out: str | Path,
    *,
    dims: int = 2,
    n_cases: int = 100,
    size: int = 16,
    seed: int = 5,
    extra_notes: dict[str, str] | None = None,
    grid: int | None = None,
) -> Path:
    """Synthesise ``out/cohort``, train the :func:`sample_config` model for one epoch and evaluate it into
    ``out/run``; returns the run directory. Takes well under a minute on a laptop CPU.

    ``size``: the side of the synthesised images; ``grid``: the side of the model's grid (default ``size``;
    smaller gives images at a finer resolution than the model sees, as clinical images are).

    ``extra_notes``: ``case_id -> text`` notes appended to the cohort before training (e.g. one holding
    markup, to check escaping). A finished run (one with predictions) is reused as it is.
    """
    from mmdx.config import config_from_dict
    from mmdx.data.synth import SynthOptions, synthesize_cohort
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.train import train_run

    out = Path(out)
    run = RunPaths(out / "run")
    if run.predictions.is_file():
        return run.root
    cohort = out / "cohort"
    for stale in (cohort, run.root):
        if stale.exists():
            shutil.rmtree(stale)
    synthesize_cohort(cohort, SynthOptions(n_cases=n_cases, seed=seed, dims=dims, size=size, workers=1))
    if extra_notes:
        with (cohort / "notes.jsonl").open("a", encoding="utf-8") as fh:
            for case_id, text in extra_notes.items():
                note = {"case_id": case_id, "text": text, "note_type": "test", "time": "2030-01-01T00:00:00Z"}
                fh.write(json.dumps(note) + "\n")
    config = config_from_dict(sample_config(dims, grid or size, name=out.name or "sample"))
    train_run(config, cohort, run.root, progress=False)
    evaluate_run(run.root, cohort, workers=1)
    return run.root


def image_kinds(cohort_dir: str | Path) -> dict[str, str]:
    """``case_id -> "dicom" | "nifti" | "none"`` from the cohort's cases table."""
    from mmdx.data.cohort import read_cohort

    cases = read_cohort(cohort_dir).cases
    kinds = {}
    for case_id, image in zip(cases["case_id"], cases["image"], strict=True):
        kinds[str(case_id)] = (
            "none" if not image else "nifti" if str(image).endswith((".nii", ".nii.gz")) else "dicom"
        )
    return kinds


def cases_with_image(run_dir: str | Path, cohort_dir: str | Path, n: int, kind: str = "dicom") -> list[str]:
    """The first ``n`` cases of the run's predictions whose image is of ``kind`` (one of :data:`IMAGE_KINDS`)."""
    if kind not in IMAGE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(IMAGE_KINDS)}, got {kind!r}")
    predicted = RunPaths(Path(run_dir)).read_predictions()["case_id"].astype(str)
    kinds = image_kinds(cohort_dir)
    return [c for c in predicted if kinds.get(c) == kind][:n]


def explained_copy(run_dir: str | Path, out: str | Path, cases: list[str]) -> Path:
    """A copy of the run at ``out`` (replacing what is there) with ``cases`` explained by Integrated
    Gradients (no sanity checks, one worker); returns ``out``."""
    from mmdx.workflows.explain import explain_run

    run, copy = RunPaths(Path(run_dir)), RunPaths(Path(out))
    if copy.root.exists():
        shutil.rmtree(copy.root)
    # the review store's SQLite companions (review.sqlite-wal, -shm) stay behind with it
    left_out = {run.checkpoints.name, run.explanations.name, run.review_store.name}

    def ignored(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n.split("-")[0] in left_out] if Path(folder) == run.root else []

    shutil.copytree(run.root, copy.root, ignore=ignored)
    explain_run(copy.root, cases=cases, check_cases=0, workers=1)
    return copy.root
