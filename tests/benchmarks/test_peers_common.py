"""The export reader and adapter plumbing shared by every peer (benchmarks/peers/common.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.peers.common import (
    EXPORT_SCHEMA,
    MODALITY_ORDER,
    ExportError,
    ExportFile,
    OutputFile,
    PeerExport,
    PeerModality,
    TabularDesign,
    blank_tabular,
    decode_categories,
    probability_column,
    write_outputs,
)
from mmdx.keys import MODALITIES


def test_peer_modalities_are_mmdx_modalities_in_the_same_order():
    assert [m.value for m in MODALITY_ORDER] == [m.value for m in MODALITIES]
    assert {m.value for m in PeerModality} == {m.value for m in MODALITIES}


@pytest.mark.parametrize(
    ("removed", "column"),
    [
        (None, "probability"),
        (PeerModality.IMAGE, "probability_without_image"),
        (PeerModality.TABULAR, "probability_without_tabular"),
        (PeerModality.TEXT, "probability_without_text"),
    ],
)
def test_probability_columns(removed, column):
    assert probability_column(removed) == column


# --------------------------------------------------------------------------------------------------------
# tabular design


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "crp": [10.0, np.nan, 30.0, 50.0],
            "age": [40.0, 60.0, np.nan, 80.0],
            "flat": [5.0, 5.0, 5.0, 5.0],
            "sex=F": [1.0, 0.0, 1.0, 0.0],
        }
    )


def test_design_imputes_the_training_mean_and_flags_missing_values():
    frame = _frame()
    design = TabularDesign(["crp", "age", "flat"]).fit(frame)
    out = design.transform(frame)
    assert out.shape == (4, 4 + 3) and out.dtype == np.float32
    # a missing value becomes the training mean, i.e. 0 after standardisation, and its indicator is 1
    assert out[1, 0] == 0.0 and out[1, 4] == 1.0
    assert out[2, 1] == 0.0 and out[2, 5] == 1.0
    assert out[0, 4] == 0.0
    # observed values are standardised with the training mean and standard deviation
    crp = np.array([10.0, 30.0, 50.0])
    np.testing.assert_allclose(out[[0, 2, 3], 0], (crp - crp.mean()) / crp.std(), rtol=1e-6)
    # a constant column keeps scale 1 instead of dividing by zero
    np.testing.assert_array_equal(out[:, 2], 0.0)


def test_design_uses_training_statistics_only():
    frame = _frame()
    design = TabularDesign(["crp", "age", "flat"]).fit(frame.iloc[[0, 2]])
    test = pd.DataFrame({"crp": [20.0], "age": [np.nan], "flat": [5.0], "sex=F": [1.0]})
    out = design.transform(test)
    # training crp values 10 and 30: mean 20, so the test value 20 standardises to 0
    assert out[0, 0] == pytest.approx(0.0)
    assert out[0, 5] == 1.0


def test_design_rejects_misuse():
    frame = _frame()
    with pytest.raises(RuntimeError, match="before fit"):
        TabularDesign(["crp"]).transform(frame)
    design = TabularDesign(["crp"]).fit(frame)
    with pytest.raises(ValueError, match="columns"):
        design.transform(frame[["age", "crp", "flat", "sex=F"]])


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(
        st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=3, max_size=3), min_size=2, max_size=20
    )
)
def test_design_output_is_always_finite(values):
    frame = pd.DataFrame(
        [[np.nan if v is None else v for v in row] for row in values], columns=["a", "b", "c"], dtype=float
    )
    design = TabularDesign(["a", "b"]).fit(frame)
    out = design.transform(frame)
    assert out.shape == (len(frame), 3 + 2)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 3:], frame[["a", "b"]].isna().to_numpy(dtype=np.float32))


def test_blank_tabular_makes_every_value_missing():
    blank = blank_tabular(_frame(), ["crp", "age", "flat"])
    assert blank[["crp", "age", "flat"]].isna().all().all()
    assert (blank["sex=F"] == 0).all()
    assert list(blank.columns) == list(_frame().columns)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["F", "M", None]), min_size=1, max_size=30))
def test_decode_categories_inverts_one_hot(sexes):
    one_hot = pd.DataFrame({f"sex={v}": [1.0 if s == v else 0.0 for s in sexes] for v in ("F", "M")})
    decoded = decode_categories(one_hot, ["sex=F", "sex=M"])
    assert decoded["sex"].tolist() == [s or "missing" for s in sexes]


# --------------------------------------------------------------------------------------------------------
# reading an export


def _write_export(directory, labels=(0, 1, 0, 1, np.nan), schema=EXPORT_SCHEMA) -> PeerExport:
    directory.mkdir(parents=True, exist_ok=True)
    ids = [f"C{i}" for i in range(len(labels))]
    splits = ["train", "train", "test", "test", "test"][: len(labels)]
    pd.DataFrame(
        {"case_id": ids, "split": splits, "label": labels, "has_image": 1, "has_tabular": 1, "has_text": 1}
    ).to_csv(directory / ExportFile.CASES, index=False)
    manifest = {
        "schema": schema,
        "key": "k",
        "image": {"dims": 2},
        "tabular": {"continuous": [], "categories": []},
    }
    (directory / ExportFile.MANIFEST).write_text(json.dumps(manifest))
    return PeerExport(directory)


def test_export_index_skips_unlabelled_cases(tmp_path):
    export = _write_export(tmp_path / "e")
    np.testing.assert_array_equal(export.index("train"), [0, 1])
    np.testing.assert_array_equal(export.index("test"), [2, 3])  # case 4 is unlabelled


def test_export_refuses_what_is_not_an_export(tmp_path):
    with pytest.raises(ExportError, match="not a peer export"):
        PeerExport(tmp_path)
    with pytest.raises(ExportError, match="schema"):
        _write_export(tmp_path / "old", schema=EXPORT_SCHEMA + 1)


def test_export_refuses_3d_images_of_a_2d_export(tmp_path):
    with pytest.raises(ExportError, match="2D"):
        _write_export(tmp_path / "e").image(3)


# --------------------------------------------------------------------------------------------------------
# writing an adapter's outputs


def test_write_outputs_round_trip(tmp_path):
    probabilities = {None: np.array([0.1, 0.9]), PeerModality.TEXT: np.array([0.5, 0.5])}
    write_outputs(
        tmp_path,
        ["A", "B"],
        np.array([0, 1]),
        probabilities,
        {"inputs": {"text": "notes"}, "x": float("nan")},
    )
    frame = pd.read_csv(tmp_path / OutputFile.PREDICTIONS)
    assert frame.columns.tolist() == ["case_id", "label", "probability", "probability_without_text"]
    assert frame["probability"].tolist() == [0.1, 0.9]
    result = json.loads((tmp_path / OutputFile.RESULT).read_text())
    assert result["x"] is None and result["adapter_peak_mib"] > 0


@pytest.mark.parametrize(
    ("probabilities", "info", "message"),
    [
        ({PeerModality.TEXT: np.array([0.5, 0.5])}, {"inputs": {}}, "every modality"),
        ({None: np.array([0.5])}, {"inputs": {}}, "1 values for 2 cases"),
        ({None: np.array([0.5, 1.5])}, {"inputs": {}}, r"\[0, 1\]"),
        ({None: np.array([0.5, np.nan])}, {"inputs": {}}, "finite"),
        ({None: np.array([0.5, 0.5])}, {}, "inputs"),
    ],
)
def test_write_outputs_rejects_bad_predictions(tmp_path, probabilities, info, message):
    with pytest.raises(ValueError, match=message):
        write_outputs(tmp_path, ["A", "B"], np.array([0, 1]), probabilities, info)
