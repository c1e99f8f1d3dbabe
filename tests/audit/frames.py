"""Synthetic ``predictions.parquet`` tables for the audit's unit tests: no model, known structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from mmdx.keys import MODALITIES
from mmdx.predict import presence_pattern

SPLIT_SIZES = {"train": 160, "val": 60, "test": 240}


def predictions_frame(
    sizes: dict[str, int] | None = None,
    seed: int = 0,
    separation: float = 1.5,
    temperature: float = 1.8,
    threshold: float = 0.5,
    prevalence: float = 0.35,
) -> pd.DataFrame:
    """A predictions table shaped like ``mmdx evaluate``'s: logits ``separation * (y - 1/2)`` plus N(0, 1)
    noise, ``probability = sigmoid(logit / temperature)``, subgroups ``sex`` (two large groups), ``site``
    (one group of 6 cases) and ``age_band``, and random modality presence."""
    rng = np.random.default_rng(seed)
    parts = []
    counter = 0
    for split, n in (sizes or SPLIT_SIZES).items():
        y = (rng.random(n) < prevalence).astype(float)
        logit = separation * (y - 0.5) * 2 + rng.normal(size=n)
        presence = rng.random((n, len(MODALITIES))) < 0.8
        presence[~presence.any(axis=1), 1] = True
        site = rng.choice(["north", "south"], size=n)
        site[:6] = "east"
        frame = pd.DataFrame(
            {
                "case_id": [f"C{counter + i:05d}" for i in range(n)],
                "patient_id": [f"P{counter + i:05d}" for i in range(n)],
                "split": split,
                "label": y,
                "logit": logit,
                "probability": expit(logit / temperature),
                "probability_uncalibrated": expit(logit),
                "sex": rng.choice(["F", "M"], size=n),
                "age_band": rng.choice(["18-49", "50-69", "70+"], size=n),
                "site": site,
            }
        )
        frame["predicted"] = (frame["probability"] >= threshold).astype(int)
        for j, modality in enumerate(MODALITIES):
            frame[f"has_{modality.value}"] = presence[:, j]
            frame[f"gate_{modality.value}"] = np.where(presence[:, j], rng.random(n), 0.0)
        frame["modalities"] = presence_pattern(presence)
        parts.append(frame)
        counter += n
    return pd.concat(parts, ignore_index=True)


def synthetic_document(seed: int = 0, n_resamples: int = 100) -> dict:
    """A report document whose statistical sections are computed from :func:`predictions_frame` and whose
    other sections are not available: renders and validates without a trained model."""
    from mmdx import __version__
    from mmdx.audit.performance import (
        calibration_section,
        comparison_section,
        discrimination_section,
        operating_point_section,
    )
    from mmdx.audit.report import AuditOptions
    from mmdx.audit.sections import Section, build_section
    from mmdx.audit.subgroups import subgroup_section
    from mmdx.metrics import json_ready

    frame = predictions_frame(seed=seed)
    other = frame.assign(
        probability=expit(frame["logit"] / 3.0 + np.random.default_rng(seed).normal(size=len(frame)))
    )
    computed = {
        Section.DISCRIMINATION: lambda: discrimination_section(frame, "test", n_resamples, 0.05, seed),
        Section.OPERATING_POINT: lambda: operating_point_section(frame, "test", 0.5, "youden", "val", 0.05),
        Section.CALIBRATION: lambda: calibration_section(
            frame, "test", {"temperature": 1.8}, n_resamples, 0.05, seed
        ),
        Section.SUBGROUPS: lambda: subgroup_section(
            frame, "test", ["sex", "site"], 0.5, 20, 3, n_resamples, 0.05, seed
        ),
        Section.COMPARISON: lambda: comparison_section(
            frame, other, "test", ("run-a", "run-b"), ("v1", "v2"), n_resamples, 0.05, seed
        ),
    }
    sections = {}
    for section in Section:
        builder = computed.get(section)
        sections[section.value] = (
            build_section(builder)
            if builder
            else {"status": "not_available", "reason": f"{section} not computed here"}
        )
    return json_ready(
        {
            "schema_version": 1,
            "kind": "mmdx model audit report",
            "created": "2024-05-01T12:00:00+00:00",
            "mmdx_version": __version__,
            "run": {
                "name": "synthetic",
                "directory": "/nowhere/synthetic",
                "model_version": "v1",
                "cohort": "toy",
                "positive": "disease",
                "compared_with": "run-b",
            },
            "settings": AuditOptions(n_resamples=n_resamples, seed=seed).to_dict(),
            "sections": sections,
        }
    )
