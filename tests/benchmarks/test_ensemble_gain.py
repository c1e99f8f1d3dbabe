"""The ensemble-gain report pairs the ensemble with its members on the same cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.ensemble_gain import member_probabilities, report


def test_an_ensemble_of_noisy_members_comes_out_ahead_of_them() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 1500)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(float)
    members = [z + rng.normal(0, 1.5, z.size) for _ in range(3)]
    frame = pd.DataFrame({"case_id": [str(i) for i in range(z.size)], "label": y})
    frame["ensemble"] = 1 / (1 + np.exp(-np.mean(members, axis=0)))
    for k, m in enumerate(members):
        frame[f"member{k}"] = 1 / (1 + np.exp(-m))
    lines = report({"run": frame, "other": frame.copy()}, resamples=200)
    assert lines[0].startswith("1500 labelled cases")
    first_low = float(lines[1].split("− member 0 ")[1].split("[")[1].split(",")[0])
    assert first_low > 0  # averaging three independent errors ranks better than any one member
    assert lines[-1].startswith("over the 2 runs")


def test_a_single_model_run_is_refused(tiny_run: Path) -> None:
    with pytest.raises(SystemExit, match="holds one model, not an ensemble"):
        member_probabilities(tiny_run, tiny_run)
