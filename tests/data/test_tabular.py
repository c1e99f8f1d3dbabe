"""Observations: harmonisation to canonical units, latest-by-time aggregation, the fitted normaliser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.issues import IssueCode
from mmdx.data.tabular import NotFittedError, TabularNormaliser, aggregate_latest, harmonise_observations

CATALOGUE = FeatureCatalogue.load()


def _rows(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["case_id", "code", "value", "unit", "time"]).astype(object)


def test_units_converted_and_codes_or_keys_accepted() -> None:
    raw = _rows(
        ("a", "2160-0", "88.4", "umol/L", "2024-01-01T10:00:00Z"),
        ("a", "creatinine", "1.5", "mg/dL", "2024-01-01T09:00:00Z"),
        ("b", "8310-5", "98.6", "[degF]", None),
        ("b", "glucose", "5", "mmol/L", "2024-01-02T00:00:00+01:00"),
    )
    out = harmonise_observations(raw, CATALOGUE, {"a", "b"}, "observations.csv")
    assert not out.case_issues and not out.unattached
    values = {(r.case_id, r.feature): r.value for r in out.table.itertuples()}
    assert values[("b", "temperature")] == pytest.approx(37.0)
    assert values[("b", "glucose")] == pytest.approx(90.08)
    latest = aggregate_latest(out.table, ["a", "b", "c"], ["creatinine", "temperature"])
    assert latest.loc["a", "creatinine"] == pytest.approx(1.0)  # 10:00 is later than 09:00
    assert np.isnan(latest.loc["c"]).all()


@pytest.mark.parametrize(
    ("row", "code"),
    [
        (("a", "2823-3", "4", "mg/dL", None), IssueCode.UNIT_UNKNOWN),
        (("a", "2823-3", "4", None, None), IssueCode.UNIT_UNKNOWN),
        (("a", "8867-4", "900", "/min", None), IssueCode.VALUE_IMPLAUSIBLE),
        (("a", "8867-4", "n/a", "/min", None), IssueCode.VALUE_NOT_NUMERIC),
        (("a", "99999-9", "1", "mg", None), IssueCode.LOINC_CHECK_DIGIT),
        (("a", "2339-0", "5.5", "mmol/L", None), IssueCode.LOINC_NOT_IN_CATALOGUE),
        (("a", "ALT", "30", "U/L", None), IssueCode.CODE_UNKNOWN),
        (("a", "8867-4", "1,000", "/min", None), IssueCode.VALUE_DECIMAL_COMMA),
        (("a", "8867-4", "80", "/min", "last tuesday"), IssueCode.TIME_INVALID),
    ],
)
def test_each_bad_row_has_its_code_and_row_number(row: tuple, code: IssueCode) -> None:
    raw = _rows(("a", "8867-4", "70", "/min", None), row)
    out = harmonise_observations(raw, CATALOGUE, {"a"}, "observations.csv")
    issues = out.case_issues["a"]
    assert [i.code for i in issues] == [code]
    assert issues[0].row == 2 and issues[0].file == "observations.csv"
    assert len(out.table) == 1  # the good row survives


def test_unknown_case_is_unattached() -> None:
    out = harmonise_observations(_rows(("ghost", "8867-4", "70", "/min", None)), CATALOGUE, {"a"}, "o.csv")
    assert [i.code for i in out.unattached] == [IssueCode.UNKNOWN_CASE_ID]


def test_latest_without_times_uses_file_order() -> None:
    raw = _rows(("a", "8867-4", "70", "/min", None), ("a", "8867-4", "90", "/min", None))
    table = harmonise_observations(raw, CATALOGUE, {"a"}, "o.csv").table
    assert aggregate_latest(table, ["a"], ["heart_rate"]).loc["a", "heart_rate"] == 90


def test_normaliser_fitted_on_training_data_only() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, np.nan], "c": [5.0, 5.0, 5.0, 5.0, 5.0]})
    cats = pd.DataFrame({"sex": ["F", "M", "F", None, "M"]})
    norm = TabularNormaliser(clip=3.0).fit(train, cats)
    assert norm.median_["x"] == 2.5 and norm.scale_["c"] == 1.0
    values, missing = norm.transform_numeric(pd.DataFrame({"x": [2.5, np.nan, 1e9], "c": [5.0, 5.0, 5.0]}))
    assert values[0, 0] == 0 and missing[1, 0] == 1 and values[1, 0] == 0
    assert values[2, 0] == 3.0  # clipped
    assert norm.cardinalities == [3]
    codes = norm.transform_categorical(pd.DataFrame({"sex": ["M", "X", None]}))
    assert codes[:, 0].tolist() == [2, 0, 0]
    restored = TabularNormaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(restored.transform_numeric(train)[0], norm.transform_numeric(train)[0])
    np.testing.assert_allclose(norm.inverse_numeric(values[:1])[0, 0], 2.5)


def test_log_scale_columns_round_trip() -> None:
    train = pd.DataFrame({"crp": [1.0, 10.0, 100.0, 1000.0, 0.0]})
    norm = TabularNormaliser(log_offsets={"crp": 0.1}).fit(train)
    values, _ = norm.transform_numeric(train)
    # equal ratios become equal steps on the log scale
    assert values[1, 0] - values[0, 0] == pytest.approx(values[2, 0] - values[1, 0], rel=0.05)
    np.testing.assert_allclose(
        norm.inverse_numeric(values)[:, 0], train["crp"], rtol=1e-5, atol=1e-6
    )  # float32
    restored = TabularNormaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(restored.transform_numeric(train)[0], values)
    assert CATALOGUE["troponin_i"].log_offset == 0.001 and CATALOGUE["heart_rate"].log_offset is None


@pytest.mark.parametrize(
    "call",
    [
        lambda n: n.transform_numeric(pd.DataFrame({"crp": [1.0]})),
        lambda n: n.transform_categorical(pd.DataFrame({"sex": ["F"]})),
        lambda n: n.inverse_numeric(np.zeros((1, 1))),
        lambda n: n.cardinalities,
        lambda n: n.to_dict(),
    ],
    ids=["transform_numeric", "transform_categorical", "inverse_numeric", "cardinalities", "to_dict"],
)
def test_an_unfitted_normaliser_says_to_fit_it_first(call) -> None:
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(\)"):
        call(TabularNormaliser())


def test_hours_since_latest_value() -> None:
    from mmdx.data.tabular import hours_since_latest

    table = pd.DataFrame(
        {
            "case_id": ["a", "a", "a", "b", "b"],
            "feature": ["crp", "crp", "wbc", "crp", "wbc"],
            "value": [1.0, 2.0, 3.0, 4.0, 5.0],
            "time": pd.to_datetime(
                ["2024-01-01T00:00Z", "2024-01-01T06:00Z", "2024-01-01T09:00Z", "2024-01-02T00:00Z", None],
                utc=True,
            ),
        }
    )
    reference = pd.Series(pd.to_datetime(["2024-01-01T12:00Z", None], utc=True), index=["a", "b"])
    hours = hours_since_latest(table, reference, ["a", "b", "c"], ["crp", "wbc", "sodium"])
    assert list(hours.columns) == ["crp.hours_since", "wbc.hours_since", "sodium.hours_since"]
    # a: index time 12:00; b: no index time, so its latest observation (crp) is the reference
    np.testing.assert_allclose(hours.loc["a"].to_numpy(), [6.0, 3.0, np.nan])
    np.testing.assert_allclose(hours.loc["b"].to_numpy(), [0.0, np.nan, np.nan])
    assert hours.loc["c"].isna().all()


@pytest.mark.parametrize(
    ("value", "unit", "code", "used", "says"),
    [
        ("<0.05", "mg/L", IssueCode.VALUE_CENSORED, 0.05, "censored (the true value lies below 0.05 mg/L)"),
        ("> 300", "mg/L", IssueCode.VALUE_CENSORED, 300.0, "lies above 300 mg/L"),
        ("\u22645", "mg/dL", IssueCode.VALUE_CENSORED, 50.0, "used as 5 mg/dL"),
        ("4,2", "mg/L", IssueCode.VALUE_DECIMAL_COMMA, 4.2, "read as 4.2 mg/L"),
        ("0,125", "mg/L", IssueCode.VALUE_DECIMAL_COMMA, 0.125, "decimal comma"),
        ("<0,05", "mg/L", IssueCode.VALUE_CENSORED, 0.05, "censored"),
        ("4,200", "mg/L", IssueCode.VALUE_DECIMAL_COMMA, None, "ambiguous"),
        ("1.0.0", "mg/L", IssueCode.VALUE_NOT_NUMERIC, None, "not a number"),
    ],
)
def test_censored_values_and_decimal_commas(value: str, unit: str, code: IssueCode, used, says: str) -> None:
    out = harmonise_observations(_rows(("a", "crp", value, unit, None)), CATALOGUE, {"a"}, "observations.csv")
    (issue,) = out.case_issues["a"]
    assert issue.code == code and says in issue.message and issue.row == 1
    if used is None:
        assert out.table.empty and issue.severity == "error"
    else:  # kept (canonical mg/L), flagged as a warning
        assert out.table["value"].tolist() == pytest.approx([used]) and issue.severity == "warning"


def test_real_world_units_are_harmonised() -> None:
    raw = _rows(
        ("a", "6690-2", "7.5", "K/uL", None),
        ("a", "777-3", "250", "x10^9/L", None),
        ("a", "8310-5", "38.5", "C", None),
        ("a", "2160-0", "88.4", "\u03bcmol/L", None),
    )
    out = harmonise_observations(raw, CATALOGUE, {"a"}, "observations.csv")
    assert not out.case_issues
    values = dict(zip(out.table["feature"], out.table["value"], strict=True))
    assert values == pytest.approx({"wbc": 7.5, "platelets": 250.0, "temperature": 38.5, "creatinine": 1.0})
