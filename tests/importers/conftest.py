"""Fixtures of the importer tests: one synthetic cohort exported as FHIR, MEDS and OMOP, and the comparison
of an imported cohort with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.synth.export import export_cohort
from mmdx.data.validation import ValidatedCohort, validate_cohort


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D cohort of 60 cases with ``export/`` holding its FHIR, MEDS and OMOP forms."""
    out = tmp_path_factory.mktemp("exported") / "synthetic"
    synthesize_cohort(out, SynthOptions(n_cases=60, seed=16, dims=2, size=16, workers=1))
    export_cohort(out, ["fhir", "meds", "omop"])
    return out


@pytest.fixture(scope="session")
def original(exported: Path) -> ValidatedCohort:
    return validate_cohort(exported, check_images=False)


def observation_sets(cohort: ValidatedCohort, case_map: dict[str, str] | None = None) -> pd.Series:
    """Canonical values per (case, feature, time), sorted, with the case ids mapped by ``case_map``."""
    obs = cohort.observations
    cases = obs["case_id"].map(case_map) if case_map else obs["case_id"]
    keyed = pd.DataFrame(
        {"case": cases, "feature": obs["feature"], "time": obs["time"].astype(str), "value": obs["value"]}
    )
    return keyed.groupby(["case", "feature", "time"])["value"].apply(lambda v: sorted(np.round(v, 9)))


def assert_same_cohort(
    original: ValidatedCohort, imported: ValidatedCohort, case_map: dict[str, str] | None = None, cases=None
) -> None:
    """Same cases (labels, splits), canonical values and joined notes, for the ``cases`` given (default all
    of the original's cases that have observations or notes)."""
    case_map = case_map or {c: c for c in imported.cases["case_id"]}
    back = {v: k for k, v in case_map.items()}
    expected_cases = (
        set(cases) if cases is not None else set(original.observations["case_id"]) | set(original.notes)
    )
    got = imported.cases.assign(case=imported.cases["case_id"].map(case_map)).set_index("case")
    assert expected_cases <= set(got.index)
    want = original.cases.set_index("case_id")
    for column in ("label", "split"):
        assert (
            got.loc[sorted(expected_cases), column].tolist()
            == want.loc[sorted(expected_cases), column].tolist()
        )
    ours = observation_sets(original)
    theirs = observation_sets(imported, case_map)
    ours = ours[ours.index.get_level_values(0).isin(expected_cases)]
    theirs = theirs[theirs.index.get_level_values(0).isin(expected_cases)]
    assert ours.index.equals(theirs.index) or set(ours.index) == set(theirs.index)
    assert all(ours[k] == theirs[k] for k in ours.index)
    for case in expected_cases:
        assert original.notes.get(case) == imported.notes.get(back[case]), case


@pytest.fixture(scope="session")
def same_cohort() -> Callable[..., None]:
    """``same_cohort(original, imported, case_map=None, cases=None)``: assert the round trip kept everything."""
    return assert_same_cohort
