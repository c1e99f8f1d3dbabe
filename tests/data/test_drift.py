"""Cohort summaries (no rows, no small cells) and the drift report's flags, on tables built by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mmdx.data.drift import MIN_CELL, drift_report, summarise_cohort, with_values

COLUMNS = ["causal", "shifted", "steady"]


def _table(
    n: int, prevalence: float, shift: float, seed: int, words: str = "cough fever ward round"
) -> SimpleNamespace:
    """``causal`` differs between classes only; ``shifted`` moves by ``shift`` sd in both classes; ``steady``
    never moves. Values are rounded to one decimal, as a laboratory writes them."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.float32)
    canonical = np.column_stack(
        [rng.normal(1.0 * y, 1.0), rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)]
    ).round(1)
    canonical[rng.random(n) < 0.1, 2] = np.nan
    presence = np.ones((n, 3), dtype=bool)
    return SimpleNamespace(
        case_ids=[f"C{seed}-{i}" for i in range(n)],
        labels=y,
        canonical=canonical,
        presence=presence,
        texts=[f"{words} {'x' * (i % 3)}" for i in range(n)],
    )


COHORT = SimpleNamespace(cases=pd.DataFrame(), image_facts={})


def _summary(table: SimpleNamespace) -> dict:
    return summarise_cohort(COHORT, table, COLUMNS)


def test_summary_holds_no_rows_and_no_small_cell() -> None:
    table = _table(400, 0.35, 0.0, seed=0)
    summary = _summary(table)
    text = json.dumps(summary)
    assert not any(case_id in text for case_id in table.case_ids)
    for feature in summary["features"].values():
        parts = [feature["bins"]["all"]] + [c["bins"] for c in feature["by_class"].values()]
        assert all(min(part["counts"]) >= MIN_CELL for part in parts)
        assert sum(feature["bins"]["all"]["counts"]) == feature["observed"]
        assert set(feature["quantiles"]) == {"0.05", "0.25", "0.5", "0.75", "0.95"}  # no minimum or maximum
    assert summary["n_positive"] == int(table.labels.sum())
    assert all(count >= MIN_CELL for count in summary["presence_patterns"].values())


def test_the_same_population_is_not_flagged() -> None:
    train, new = _table(600, 0.35, 0.0, seed=1), _table(1000, 0.35, 0.0, seed=2)
    report = drift_report(_summary(train), with_values(_summary(new), new, COLUMNS), labelled=True)
    assert report["flags"] == []
    assert not report["prevalence"]["flag"]


def test_with_labels_only_the_shifted_feature_is_flagged_and_without_labels_the_caveat_shows() -> None:
    train, new = _table(600, 0.35, 0.0, seed=3), _table(1500, 0.10, 0.5, seed=4)
    training = _summary(train)
    labelled = drift_report(training, with_values(_summary(new), new, COLUMNS), labelled=True)
    flagged = [row["feature"] for row in labelled["features"] if row["flag"]]
    assert flagged == ["shifted"]
    assert labelled["prevalence"]["flag"]
    assert labelled["features"][0]["feature"] == "shifted"  # ranked first
    assert "Holm" in labelled["correction"]
    assert {row["feature"] for row in labelled["features_marginal"] if row["flag"]} == {"shifted", "causal"}
    marginal = drift_report(
        training, with_values(_summary(new), new, COLUMNS), labelled=False, estimated_prevalence=0.1
    )
    assert {row["feature"] for row in marginal["features"] if row["flag"]} == {"shifted", "causal"}
    assert marginal["caveat"] and "prevalence" in marginal["caveat"]
    assert any("rarer" in line for line in marginal["flags"])


def test_missingness_and_vocabulary_are_compared() -> None:
    train = _table(600, 0.35, 0.0, seed=5)
    new = _table(800, 0.35, 0.0, seed=6, words="dyspnoe sputum purulent tachypnoea")
    new.canonical[np.random.default_rng(7).random(800) < 0.5, 0] = np.nan
    report = drift_report(_summary(train), with_values(_summary(new), new, COLUMNS), labelled=True)
    assert [row["feature"] for row in report["missingness"] if row["flag"]] == ["causal"]
    assert report["notes"]["vocabulary"]["flag"]
    assert report["notes"]["vocabulary"]["external_in_vocabulary_share"] < 0.5


@pytest.mark.parametrize("offset", [1e-15, -1e-15])
def test_values_off_the_grid_by_a_rounding_error_stay_in_their_bin(offset: float) -> None:
    train, new = _table(600, 0.35, 0.0, seed=8), _table(1000, 0.35, 0.0, seed=9)
    new.canonical = new.canonical * (1 + offset)  # e.g. 39 g/L converted to 3.9000000000000004 g/dL
    report = drift_report(_summary(train), with_values(_summary(new), new, COLUMNS), labelled=True)
    assert not any(row["flag"] for row in report["features"])


def test_domain_classifier_tells_shifted_sites_apart_and_not_the_same_one() -> None:
    from mmdx.data.drift import domain_auroc

    rng = np.random.default_rng(10)
    same = domain_auroc(rng.normal(0, 1, (300, 3)), rng.normal(0, 1, (300, 3)))
    shifted = domain_auroc(rng.normal(0, 1, (300, 3)), rng.normal([1.0, 0, 0], 1, (300, 3)))
    assert 0.4 < same < 0.6 and shifted > 0.7


def test_units_are_summarised_from_the_rows_used_and_an_unseen_unit_is_flagged(tmp_path) -> None:
    from mmdx.data.drift import _units, _units_summary
    from mmdx.data.synth import SynthOptions, synthesize_cohort
    from mmdx.data.validation import validate_cohort

    synthesize_cohort(tmp_path / "c", SynthOptions(n_cases=60, seed=2, dims=2, size=16))
    cohort = validate_cohort(tmp_path / "c", workers=1, check_images=False)
    units = _units_summary(cohort, cohort.cases["case_id"].tolist())
    raw = pd.read_csv(tmp_path / "c" / "observations.csv")
    temperature = raw[raw["code"].isin(["8310-5", "temperature"])]
    written = {u for u in temperature["unit"] if (temperature["unit"] == u).sum() >= MIN_CELL}
    assert set(units["temperature"]) - {"other"} == written  # Cel and [degF], as the sites write them
    assert sum(units["temperature"].values()) == len(cohort.observations.query("feature == 'temperature'"))
    rows = _units({"units": {"glucose": {"mg/dL": 50}}}, {"units": {"glucose": {"mg/dL": 20, "mmol/L": 30}}})
    assert rows[0]["flag"] and rows[0]["unseen"] == ["mmol/L"]
