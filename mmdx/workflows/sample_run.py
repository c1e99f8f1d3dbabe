"""A small run to try the dashboard on: synthesise a cohort, train a model that trains in seconds, and
evaluate it. The dashboard's tests and its benchmark build their runs with :func:`build_sample_run`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mmdx.run import RunPaths


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
) -> Path:
    """Synthesise ``out/cohort``, train the :func:`sample_config` model for one epoch and evaluate it into
    ``out/run``; returns the run directory. Takes well under a minute on a laptop CPU.

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
    config = config_from_dict(sample_config(dims, size, name=out.name or "sample"))
    train_run(config, cohort, run.root, progress=False)
    evaluate_run(run.root, cohort, workers=1)
    return run.root
