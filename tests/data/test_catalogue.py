"""The feature catalogue: every required feature, exact conversions, lookups by code and key."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_schemas import schema_path
from mmdx.data.catalogue import FeatureCatalogue, ObservationError, is_valid_loinc, loinc_check_digit
from mmdx.data.issues import IssueCode
from mmdx.data.schemas import schema_errors
from mmdx.errors import CohortError

CATALOGUE = FeatureCatalogue.load()

REQUIRED = [
    ("heart_rate", "8867-4", "/min", []),
    ("resp_rate", "9279-1", "/min", []),
    ("spo2", "59408-5", "%", []),
    ("temperature", "8310-5", "Cel", ["[degF]"]),
    ("sbp", "8480-6", "mm[Hg]", []),
    ("dbp", "8462-4", "mm[Hg]", []),
    ("wbc", "6690-2", "10*3/uL", ["10*9/L"]),
    ("hemoglobin", "718-7", "g/dL", ["g/L", "mmol/L"]),
    ("platelets", "777-3", "10*3/uL", ["10*9/L"]),
    ("crp", "1988-5", "mg/L", ["mg/dL"]),
    ("procalcitonin", "33959-8", "ng/mL", ["ug/L"]),
    ("lactate", "2524-7", "mmol/L", ["mg/dL"]),
    ("creatinine", "2160-0", "mg/dL", ["umol/L"]),
    ("bun", "3094-0", "mg/dL", ["mmol/L"]),
    ("glucose", "2345-7", "mg/dL", ["mmol/L"]),
    ("sodium", "2951-2", "mmol/L", ["meq/L"]),
    ("potassium", "2823-3", "mmol/L", ["meq/L"]),
    ("bilirubin", "1975-2", "mg/dL", ["umol/L"]),
    ("albumin", "1751-7", "g/dL", ["g/L"]),
    ("troponin_i", "10839-9", "ng/mL", ["ng/L"]),
]


@pytest.mark.parametrize(("key", "loinc", "unit", "others"), REQUIRED, ids=[r[0] for r in REQUIRED])
def test_required_features_present(key: str, loinc: str, unit: str, others: list[str]) -> None:
    feature = CATALOGUE[key]
    assert CATALOGUE[loinc] is feature
    assert feature.unit == unit
    for other in others:
        assert other in feature.units
    low, high = feature.plausible
    assert low < high
    assert feature.reference is not None and low <= feature.reference[0] < feature.reference[1] <= high


# (feature, value, unit, expected canonical value) -- textbook conversions
CONVERSIONS = [
    ("creatinine", 88.4, "umol/L", 1.0),
    ("glucose", 5.0, "mmol/L", 90.08),
    ("temperature", 98.6, "[degF]", 37.0),
    ("temperature", 212.0, "[degF]", 100.0),
    ("hemoglobin", 135.0, "g/L", 13.5),
    ("crp", 1.2, "mg/dL", 12.0),
    ("lactate", 18.016, "mg/dL", 2.0),
    ("bilirubin", 17.1, "umol/L", 1.0),
    ("troponin_i", 40.0, "ng/L", 0.04),
    ("bun", 5.0, "mmol/L", 14.005),
    ("wbc", 7.5, "10*9/L", 7.5),
    ("sbp", 120.0, "mmHg", 120.0),  # alias of mm[Hg]
]


@pytest.mark.parametrize(("key", "value", "unit", "expected"), CONVERSIONS)
def test_conversions(key: str, value: float, unit: str, expected: float) -> None:
    assert CATALOGUE[key].to_canonical(value, unit) == pytest.approx(expected, rel=1e-4)


@given(
    st.sampled_from([(f.key, u) for f in CATALOGUE for u in f.units]),
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
)
def test_conversion_round_trip(pair: tuple[str, str], value: float) -> None:
    key, unit = pair
    feature = CATALOGUE[key]
    assert feature.from_canonical(feature.to_canonical(value, unit), unit) == pytest.approx(value, abs=1e-6)


def test_unknown_code_suggests_key() -> None:
    with pytest.raises(ObservationError) as info:
        CATALOGUE.lookup("creatinin")
    assert info.value.code == IssueCode.CODE_UNKNOWN
    assert "did you mean 'creatinine'" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "unit", "code"),
    [
        ("potassium", 4.0, "mg/dL", IssueCode.UNIT_UNKNOWN),
        ("heart_rate", 900, "/min", IssueCode.VALUE_IMPLAUSIBLE),
        ("heart_rate", "pending", "/min", IssueCode.VALUE_NOT_NUMERIC),
        ("heart_rate", float("inf"), "/min", IssueCode.VALUE_NOT_NUMERIC),
    ],
)
def test_rejected_observations_have_codes(key: str, value: object, unit: str, code: IssueCode) -> None:
    with pytest.raises(ObservationError) as info:
        CATALOGUE[key].canonical_checked(value, unit)
    assert info.value.code == code


def test_packaged_catalogue_matches_its_schema() -> None:
    document = json.loads(schema_path("feature_catalogue.json").read_text())
    assert schema_errors("feature_catalogue", document) == []


def test_invalid_catalogue_is_refused(tmp_path) -> None:
    bad = {
        "schema_version": 1,
        "features": [
            {
                "key": "x",
                "loinc": "1-1",
                "display": "x",
                "unit": "mg",
                "units": {"g": {"factor": 1}},
                "plausible": [0, 1],
            }
        ],
    }
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(CohortError, match="canonical unit"):
        FeatureCatalogue.load(path)
    bad["features"][0]["units"] = {"mg": {"factor": -1}}
    path.write_text(json.dumps(bad))
    with pytest.raises(CohortError, match="invalid"):
        FeatureCatalogue.load(path)


@pytest.mark.parametrize(
    ("number", "check"),
    # every code of the packaged catalogue, and LOINC codes outside it (glucose in blood, a troponin)
    [(f.loinc.split("-")[0], int(f.loinc[-1])) for f in CATALOGUE]
    + [("2339", 0), ("89579", 7), ("12345", 5)],
)
def test_loinc_check_digits(number: str, check: int) -> None:
    assert loinc_check_digit(number) == check
    assert is_valid_loinc(f"{number}-{check}") and not is_valid_loinc(f"{number}-{(check + 1) % 10}")


@pytest.mark.parametrize(
    ("code", "reason", "says", "suggests"),
    [
        # real LOINC codes the catalogue lacks: reported as such, never "corrected" into another test
        ("2339-0", IssueCode.LOINC_NOT_IN_CATALOGUE, "LOINC 2339-0 is not in the feature catalogue", None),
        ("89579-7", IssueCode.LOINC_NOT_IN_CATALOGUE, "LOINC 89579-7 is not in the feature catalogue", None),
        # a wrong check digit one edit from a catalogue code: a typo, with a suggestion
        ("2160-1", IssueCode.LOINC_CHECK_DIGIT, "check digit of 2160 is 0, not 1", "2160-0 (creatinine)"),
        ("8876-4", IssueCode.LOINC_CHECK_DIGIT, "check digit of 8876 is", "8867-4 (heart_rate)"),
        # a wrong check digit far from every catalogue code: no suggestion
        ("2339-1", IssueCode.LOINC_CHECK_DIGIT, "check digit of 2339 is 0, not 1", None),
        ("creatinin", IssueCode.CODE_UNKNOWN, "neither a LOINC code", "creatinine"),
    ],
)
def test_codes_outside_the_catalogue(code: str, reason: IssueCode, says: str, suggests: str | None) -> None:
    with pytest.raises(ObservationError) as info:
        CATALOGUE.lookup(code)
    assert info.value.code == reason and says in str(info.value)
    assert ("did you mean" in str(info.value)) == (suggests is not None)
    if suggests:
        assert suggests in str(info.value)


@pytest.mark.parametrize(
    ("key", "unit", "resolved"),
    [
        ("creatinine", "\u03bcmol/L", "umol/L"),  # Greek mu, what NFKC makes of the micro sign
        ("creatinine", "\u00b5mol/L", "umol/L"),  # micro sign
        ("creatinine", "umol/L", "umol/L"),
        ("procalcitonin", "\u03bcg/L", "ug/L"),
        ("wbc", "K/uL", "10*3/uL"),
        ("platelets", "K/\u00b5L", "10*3/uL"),
        ("wbc", "x10^9/L", "10*9/L"),
        ("wbc", "\u00d710^9/L", "10*9/L"),
        ("platelets", "10^9/L", "10*9/L"),
        ("temperature", "C", "Cel"),
        ("temperature", "\u00b0C", "Cel"),
        ("glucose", "mg/dl", "mg/dL"),  # a listed alias
        ("wbc", "x10E9/L", "10*9/L"),  # a laboratory system's power of ten
        ("wbc", "10e9/l", "10*9/L"),
        ("platelets", "x10E3/uL", "10*3/uL"),
        ("sodium", "mmol/l", "mmol/L"),  # UCUM: l and L are both the litre
        ("creatinine", "\u00b5mol/l", "umol/L"),
        ("heart_rate", "1/min", "/min"),
    ],
)
def test_unit_spellings_resolve(key: str, unit: str, resolved: str) -> None:
    assert CATALOGUE[key].resolve_unit(unit) == resolved


@pytest.mark.parametrize(
    ("key", "unit", "hint"),
    [("creatinine", "UMOL/L", "did you mean 'umol/L'"), ("glucose", "MG/DL", "did you mean 'mg/dL'")],
)
def test_units_are_case_sensitive_but_say_so(key: str, unit: str, hint: str) -> None:
    with pytest.raises(ObservationError) as info:
        CATALOGUE[key].resolve_unit(unit)
    assert (
        info.value.code == IssueCode.UNIT_UNKNOWN
        and hint in str(info.value)
        and "case-sensitive" in str(info.value)
    )


def test_implausible_values_show_the_range_in_the_value_unit() -> None:
    with pytest.raises(ObservationError) as info:
        CATALOGUE["creatinine"].canonical_checked(9000, "\u00b5mol/L")
    message = str(info.value)
    assert "9000 umol/L is outside the plausible range 8.84-2210 umol/L (0.1-25 mg/dL)" in message
