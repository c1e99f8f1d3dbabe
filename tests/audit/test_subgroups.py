"""The subgroup section against sklearn and fairlearn: every group kept, small ones flagged, gaps among the rest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import equalized_odds_difference
from sklearn.metrics import confusion_matrix, roc_auc_score

from mmdx.audit.sections import MODALITY_PATTERN, SectionUnavailable
from mmdx.audit.subgroups import subgroup_section

from .frames import predictions_frame

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return predictions_frame(seed=21)


@pytest.fixture(scope="module")
def section(frame: pd.DataFrame) -> dict:
    return subgroup_section(frame, "test", ["sex", "site", "age_band"], THRESHOLD, 20, 3, 200, 0.05, seed=1)


def _table(section: dict, attribute: str) -> dict:
    return next(t for t in section["attributes"] if t["attribute"] == attribute)


@pytest.mark.parametrize("attribute", ["sex", "site", "age_band", MODALITY_PATTERN])
def test_every_group_matches_sklearn(frame: pd.DataFrame, section: dict, attribute: str) -> None:
    test = frame[frame["split"] == "test"]
    column = "modalities" if attribute == MODALITY_PATTERN else attribute
    table = _table(section, attribute)
    assert [row["group"] for row in table["rows"]] == sorted(test[column].unique())
    assert sum(row["n"] for row in table["rows"]) == len(test)
    for row in table["rows"]:
        part = test[test[column] == row["group"]]
        y, p = part["label"].to_numpy().astype(int), part["probability"].to_numpy()
        assert row["n"] == len(part) and row["n_positive"] == y.sum()
        if 0 < y.sum() < len(y):
            assert row["auroc"] == pytest.approx(roc_auc_score(y, p))
            assert row["auroc_low"] <= row["auroc"] <= row["auroc_high"]
        else:
            assert row["auroc"] is None and "auroc" in row["undefined"]
        tn, fp, fn, tp = confusion_matrix(y, (p >= THRESHOLD).astype(int), labels=[0, 1]).ravel()
        if tp + fn:
            assert row["sensitivity"] == pytest.approx(tp / (tp + fn))
        if fp + tn:
            assert row["fpr"] == pytest.approx(fp / (fp + tn))
        small = len(part) < 20 or min(y.sum(), len(y) - y.sum()) < 3
        assert row["too_small"] == small and (row["reason"] is not None) == small


def test_small_groups_are_flagged_and_left_out_of_the_gaps(frame: pd.DataFrame, section: dict) -> None:
    site = _table(section, "site")
    east = next(row for row in site["rows"] if row["group"] == "east")
    assert east["too_small"] and "n=6 < min_n=20" in east["reason"]
    assert site["n_flagged"] >= 1
    gaps = site["gaps"]
    assert "east" in gaps["groups_excluded"] and "east" not in gaps["groups_compared"]


@pytest.mark.parametrize("attribute", ["sex", "age_band"])
def test_gaps_match_fairlearn_and_the_group_rows(frame: pd.DataFrame, section: dict, attribute: str) -> None:
    test = frame[frame["split"] == "test"]
    table = _table(section, attribute)
    compared = table["gaps"]["groups_compared"]
    kept = test[test[attribute].isin(compared)]
    expected = equalized_odds_difference(
        kept["label"].astype(int),
        (kept["probability"] >= THRESHOLD).astype(int),
        sensitive_features=kept[attribute],
    )
    assert table["gaps"]["equalized_odds_difference"] == pytest.approx(expected)
    aurocs = {row["group"]: row["auroc"] for row in table["rows"] if row["group"] in compared}
    assert table["gaps"]["auroc_gap"] == pytest.approx(max(aurocs.values()) - min(aurocs.values()))
    high, low = table["gaps"]["auroc_extremes"]
    assert aurocs[high] == max(aurocs.values()) and aurocs[low] == min(aurocs.values())


def test_an_attribute_absent_from_the_predictions_is_listed_with_the_reason(frame: pd.DataFrame) -> None:
    section = subgroup_section(frame, "test", ["sex", "ethnicity"], THRESHOLD, 20, 3, 50, 0.05, 0)
    assert [t["attribute"] for t in section["attributes"]] == ["sex", MODALITY_PATTERN]
    assert section["unavailable"][0]["attribute"] == "ethnicity"
    assert "mmdx evaluate" in section["unavailable"][0]["reason"]


def test_missing_subgroup_values_form_their_own_group(frame: pd.DataFrame) -> None:
    changed = frame.copy()
    changed["sex"] = changed["sex"].astype(object)
    test_rows = changed.index[changed["split"] == "test"][:7]
    changed.loc[test_rows, "sex"] = "nan"
    rows = _table(subgroup_section(changed, "test", ["sex"], THRESHOLD, 5, 1, 50, 0.05, 0), "sex")["rows"]
    missing = next(row for row in rows if row["group"] == "<missing>")
    assert missing["n"] == 7


def test_one_class_evaluation_split_is_unavailable(frame: pd.DataFrame) -> None:
    changed = frame.assign(label=np.where(frame["split"] == "test", 0.0, frame["label"]))
    with pytest.raises(SectionUnavailable, match="one class"):
        subgroup_section(changed, "test", ["sex"], THRESHOLD, 5, 1, 50, 0.05, 0)
