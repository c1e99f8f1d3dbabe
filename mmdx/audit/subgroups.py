"""The subgroup section: every subgroup of ``cohort.yaml`` (sex, age band, site, ...) and the modality-presence
pattern, each group with its size, AUROC with a bootstrap interval, sensitivity and FPR with Wilson
intervals, calibration, and the gaps between the groups large enough to compare (fairlearn's equalized
odds difference among them). Groups too small to judge are kept and flagged with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmdx.audit.sections import (
    AUDIT_SECTIONS,
    MODALITY_PATTERN,
    AuditInputs,
    Section,
    SectionSpec,
    evaluation_arrays,
    group_labels,
    labelled_split,
    subgroup_columns,
)
from mmdx.metrics import json_ready
from mmdx.statistics import group_gaps, subgroup_table


def subgroup_section(
    frame: pd.DataFrame,
    split: str,
    attributes: list[str],
    threshold: float,
    min_n: int,
    min_events: int,
    n_resamples: int,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """One table per attribute of the evaluation ``split``: rows of
    :func:`~mmdx.statistics.subgroup_table` and the :func:`~mmdx.statistics.group_gaps`.

    ``attributes``: the cohort's subgroup columns (``cohort.yaml`` ``subgroups``); the modality-presence
    pattern is always added as ``modality_pattern``. An attribute missing from the predictions is listed in
    ``unavailable`` with the reason.
    """
    y, p = evaluation_arrays(frame, split)
    part = labelled_split(frame, split)
    columns, unavailable = subgroup_columns(frame, attributes)
    tables = []
    for attribute, column in columns.items():
        groups = group_labels(part[column])
        rows = subgroup_table(y, p, groups, threshold, min_n, min_events, n_resamples, alpha, seed)
        gaps = group_gaps(y, p, groups, threshold, min_n, min_events)
        tables.append(
            {
                "attribute": attribute,
                "column": str(column),
                "n_groups": len(rows),
                "n_flagged": int(np.count_nonzero([row["too_small"] for row in rows])),
                "rows": json_ready(rows),
                "gaps": gaps.to_dict(),
            }
        )
    return {
        "split": split,
        "threshold": threshold,
        "min_n": min_n,
        "min_events": min_events,
        "alpha": alpha,
        "n_resamples": n_resamples,
        "seed": seed,
        "n": int(y.size),
        "attributes": tables,
        "unavailable": [{"attribute": a, "reason": r} for a, r in unavailable.items()],
        "modality_pattern_attribute": MODALITY_PATTERN,
    }


def _build(inputs: AuditInputs) -> dict[str, Any]:
    o = inputs.options
    return subgroup_section(
        inputs.frame,
        o.split,
        inputs.attributes,
        inputs.bundle.threshold,
        o.min_group_size,
        o.min_group_events,
        o.n_resamples,
        o.alpha,
        o.seed,
    )


AUDIT_SECTIONS.register(SectionSpec(Section.SUBGROUPS, "subgroups (bootstrap x{n_resamples})", _build))
