"""The peer comparison's statistics and table (benchmarks/peers/report.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.peers.report import (
    MMDX,
    PEER,
    SINGLE,
    best_peer,
    format_mean_sd,
    markdown_table,
    mean_sd,
    replace_section,
    rows_from_records,
    seed_mean_auroc_difference,
    stratified_weights,
    targets,
    write_section,
)
from mmdx.metrics import auroc
from mmdx.statistics import paired_bootstrap_difference


def _scores(rng: np.random.Generator, y: np.ndarray, separation: float) -> np.ndarray:
    """Probabilities whose AUROC grows with ``separation``."""
    return 1 / (1 + np.exp(-(separation * (2 * y - 1) + rng.normal(size=y.size))))


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).permutation(np.r_[np.ones(60), np.zeros(140)]).astype(int)


def test_mean_sd():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert mean_sd([0.5]) == (0.5, 0.0, 1)
    mean, _, n = mean_sd([None, float("nan")])
    assert math.isnan(mean) and n == 0
    assert format_mean_sd([0.8, 0.9]) == "0.850 ± 0.071"
    assert format_mean_sd([]) == "–"


def test_stratified_weights_keep_the_class_counts(labels):
    weights = stratified_weights(labels, 50, np.random.default_rng(1))
    assert weights.shape == (50, labels.size)
    np.testing.assert_array_equal(weights[:, labels == 1].sum(axis=1), 60)
    np.testing.assert_array_equal(weights[:, labels == 0].sum(axis=1), 140)


def test_identical_models_differ_by_exactly_zero(labels):
    p = _scores(np.random.default_rng(2), labels, 1.0)
    diff = seed_mean_auroc_difference(labels, p[None], p[None], n_resamples=300)
    assert diff.estimate == 0.0 and diff.low == 0.0 and diff.high == 0.0
    assert diff.p_value == 1.0 and not diff.excludes_zero


def test_difference_is_antisymmetric(labels):
    rng = np.random.default_rng(3)
    a, b = _scores(rng, labels, 1.5), _scores(rng, labels, 0.5)
    ab = seed_mean_auroc_difference(labels, a[None], b[None], n_resamples=400, seed=7)
    ba = seed_mean_auroc_difference(labels, b[None], a[None], n_resamples=400, seed=7)
    assert ab.estimate == pytest.approx(-ba.estimate)
    assert ab.low == pytest.approx(-ba.high) and ab.high == pytest.approx(-ba.low)


def test_one_seed_agrees_with_the_audit_paired_bootstrap(labels):
    rng = np.random.default_rng(4)
    a, b = _scores(rng, labels, 1.2), _scores(rng, labels, 0.8)
    ours = seed_mean_auroc_difference(labels, a[None], b[None], n_resamples=4000, seed=1)
    audit = paired_bootstrap_difference(auroc, labels, a, b, n_resamples=4000, seed=1)
    assert ours.estimate == pytest.approx(audit.estimate)
    # different random draws of the same resampling scheme: the percentile bounds agree closely
    assert ours.low == pytest.approx(audit.low, abs=0.015)
    assert ours.high == pytest.approx(audit.high, abs=0.015)


def test_seed_average_is_the_mean_of_seed_aurocs(labels):
    rng = np.random.default_rng(5)
    a = np.stack([_scores(rng, labels, s) for s in (1.0, 1.4, 1.8)])
    b = np.stack([_scores(rng, labels, s) for s in (0.4, 0.6)])
    diff = seed_mean_auroc_difference(labels, a, b, n_resamples=200)
    expected = np.mean([auroc(labels, p) for p in a]) - np.mean([auroc(labels, p) for p in b])
    assert diff.estimate == pytest.approx(expected)


def test_a_clearly_better_model_gets_an_interval_above_zero(labels):
    rng = np.random.default_rng(6)
    diff = seed_mean_auroc_difference(
        labels, _scores(rng, labels, 3.0)[None], _scores(rng, labels, 0.3)[None]
    )
    assert diff.low > 0 and diff.excludes_zero and diff.p_value < 0.01


# --------------------------------------------------------------------------------------------------------
# rows and the table


def _record(key, group, seed, auc, removed, **extra):
    return {
        "model": key.upper(),
        "key": key,
        "group": group,
        "seed": seed,
        "status": "ok",
        "test_auroc": auc,
        "removed": removed,
        "train_seconds": 10.0,
        "seconds_per_epoch": extra.pop("spe", None),
        "latency_ms_per_case": 1.0,
        "peak_mib": 100.0,
        "parameters": extra.pop("parameters", None),
        "inputs": {"text": "notes"},
        **extra,
    }


def _records():
    full = {"image": 0.80, "tabular": 0.85, "text": 0.82}
    return [
        _record("mmdx_gated_attention", MMDX, 0, 0.90, full, spe=2.0, parameters=1000),
        _record("mmdx_gated_attention", MMDX, 1, 0.88, full, spe=2.0, parameters=1000),
        _record("haim", PEER, 0, 0.85, {"image": 0.70, "tabular": 0.70, "text": 0.70}),
        _record(
            "widedeep",
            PEER,
            0,
            0.80,
            {"image": 0.60, "tabular": 0.60, "text": 0.60},
            spe=4.0,
            parameters=2000,
        ),
        _record("tfidf_text", SINGLE, 0, 0.86, {"image": None, "tabular": None, "text": 0.5}),
        {
            "model": "BROKEN",
            "key": "broken",
            "group": PEER,
            "seed": 0,
            "status": "failed",
            "reason": "exit 1: boom",
        },
    ]


def test_rows_group_seeds_and_drops():
    rows = {r.key: r for r in rows_from_records(_records())}
    mmdx = rows["mmdx_gated_attention"]
    assert len(mmdx.ok) == 2 and mmdx.auroc == pytest.approx(0.89)
    assert mmdx.mean_drop == pytest.approx(0.89 - np.mean([0.80, 0.85, 0.82]))
    assert rows["tfidf_text"].uses("text") and not rows["tfidf_text"].uses("image")
    assert rows["broken"].ok == []


def test_best_peer_is_the_best_non_mmdx_row_that_ran():
    assert best_peer(rows_from_records(_records())).key == "tfidf_text"
    only_mmdx = [r for r in _records() if r["group"] == MMDX]
    assert best_peer(rows_from_records(only_mmdx)) is None


def test_table_shows_means_unused_modalities_and_failures():
    table = markdown_table(rows_from_records(_records()), {"widedeep": "middle slice · values · notes"})
    lines = table.splitlines()
    assert lines[0].startswith("| model | given | seeds | test AUROC")
    mmdx_line = next(line for line in lines if line.startswith("| MMDX_GATED_ATTENTION"))
    assert "|  | 2 | 0.890 ± 0.014 |" in mmdx_line and "1,000" in mmdx_line
    assert "| WIDEDEEP | middle slice · values · notes | 1 |" in table
    tfidf = next(line for line in lines if line.startswith("| TFIDF_TEXT"))
    assert tfidf.count("| – |") >= 2  # image and tabular unused
    assert "not run: exit 1: boom" in table
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_targets_report_met_and_not_met():
    rows = rows_from_records(_records())
    from benchmarks.peers.report import Difference

    ahead = {"mmdx_gated_attention": Difference(0.03, 0.01, 0.05, 0.01, 100, 1000, 0.05)}
    lines = targets(rows, ahead, "mmdx_gated_attention", "widedeep")
    assert lines[0].startswith("- AUROC ahead of every peer with a CI excluding zero: met")
    assert "no worse than pytorch-widedeep's: met" in lines[1] and "ratio 0.50" in lines[1]
    assert "degrades least" in lines[2] and ": met" in lines[2]
    overlapping = {"mmdx_gated_attention": Difference(0.03, -0.01, 0.05, 0.2, 100, 1000, 0.05)}
    assert ": not met" in targets(rows, overlapping, "mmdx_gated_attention", "widedeep")[0]
    assert "did not run" in targets(rows, ahead, "absent", "widedeep")[0]


# --------------------------------------------------------------------------------------------------------
# BENCHMARKS.md sections


def test_replace_section_inserts_replaces_and_keeps_the_rest():
    document = "# Benchmarks\n\nIntro.\n"
    once = replace_section(document, "peers:a", "table A v1")
    assert "Intro." in once and "table A v1" in once
    twice = replace_section(replace_section(once, "peers:b", "table B"), "peers:a", "table A v2")
    assert "table A v1" not in twice and "table A v2" in twice and "table B" in twice
    assert twice.index("table A v2") < twice.index("table B")  # replaced in place
    assert replace_section(twice, "peers:a", "table A v2") == twice


def test_write_section_creates_the_file(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section(path, "peers:x", "hello")
    text = path.read_text()
    assert text.startswith("# Benchmarks") and "<!-- peers:x:begin -->\nhello\n<!-- peers:x:end -->" in text


def test_aligned_probabilities_follow_the_requested_case_order(tmp_path):
    from benchmarks.peers.report import aligned_probabilities

    path = tmp_path / "p.csv"
    pd.DataFrame({"case_id": ["B", "A"], "label": [1, 0], "probability": [0.9, 0.1]}).to_csv(
        path, index=False
    )
    np.testing.assert_array_equal(aligned_probabilities([{"predictions": path}], ["A", "B"]), [[0.1, 0.9]])
    with pytest.raises(ValueError, match="lacks 1 test cases"):
        aligned_probabilities([{"predictions": path}], ["A", "B", "C"])
