"""The out-of-fold calibration benchmark: which logits each calibration is fitted on."""

from __future__ import annotations

import numpy as np

from benchmarks.oof_calibration import calibration_sets


def test_the_three_calibrations_fit_on_validation_out_of_fold_and_both() -> None:
    val_logits, val_labels = np.array([0.5, -0.5]), np.array([1.0, 0.0])
    oof_logits, oof_labels = np.array([2.0, -2.0, 1.0]), np.array([1.0, 0.0, 0.0])
    sets = calibration_sets(val_logits, val_labels, oof_logits, oof_labels)
    assert list(sets) == ["validation", "out-of-fold", "pooled"]
    assert np.array_equal(sets["validation"][0], val_logits) and np.array_equal(
        sets["out-of-fold"][1], oof_labels
    )
    logits, labels = sets["pooled"]
    assert logits.tolist() == [2.0, -2.0, 1.0, 0.5, -0.5] and labels.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
