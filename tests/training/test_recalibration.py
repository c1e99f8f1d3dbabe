"""The local recalibration artefact: versioned, checksummed, bound to its model, never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from mmdx.errors import BundleError
from mmdx.training.recalibration import (
    Recalibration,
    check_site,
    load_recalibration,
    next_version_dir,
    save_recalibration,
)

RECAL = Recalibration("logistic", -0.6, 0.9, "harbour", "abc123", n_cases=100, n_positive=21)


def test_round_trip_and_transform(tmp_path: Path) -> None:
    folder = save_recalibration(next_version_dir(tmp_path, "harbour"), RECAL, "f" * 64)
    assert folder.name == "harbour-v1"
    loaded = load_recalibration(folder, "abc123")
    assert loaded == RECAL
    z = np.array([-2.0, 0.0, 1.5])
    assert loaded.transform(z) == pytest.approx(expit(-0.6 + 0.9 * z))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["bundle_manifest_sha256"] == "f" * 64 and manifest["model_version"] == "abc123"


def test_versions_never_overwrite(tmp_path: Path) -> None:
    first = save_recalibration(next_version_dir(tmp_path, "harbour"), RECAL, "0" * 64)
    second = save_recalibration(next_version_dir(tmp_path, "harbour"), RECAL, "0" * 64)
    assert (first.name, second.name) == ("harbour-v1", "harbour-v2")
    with pytest.raises(FileExistsError):
        save_recalibration(first, RECAL, "0" * 64)


def test_a_modified_artefact_or_another_model_is_refused(tmp_path: Path) -> None:
    folder = save_recalibration(next_version_dir(tmp_path, "harbour"), RECAL, "0" * 64)
    with pytest.raises(BundleError, match="recalibrates model abc123"):
        load_recalibration(folder, "other")
    path = folder / "calibration.json"
    path.write_text(path.read_text().replace("-0.6", "-5.0"))
    with pytest.raises(BundleError, match="does not match its checksum"):
        load_recalibration(folder, "abc123")
    with pytest.raises(BundleError, match="is not a recalibration"):
        load_recalibration(tmp_path / "missing", "abc123")


def test_bad_values_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="positive slope"):
        Recalibration("logistic", 0.0, -1.0, "s", "m", 10)
    with pytest.raises(ValueError, match="unknown recalibration method"):
        Recalibration("isotonic", 0.0, 1.0, "s", "m", 10)
    with pytest.raises(ValueError, match="site name"):
        check_site("../escape")


def test_a_closed_test_artefact_records_what_it_selected(tmp_path: Path) -> None:
    chosen = Recalibration(
        "closed_test", -1.2, 1.0, "harbour", "abc123", n_cases=100, n_positive=18, selected="intercept"
    )
    folder = save_recalibration(next_version_dir(tmp_path, "harbour"), chosen, "e" * 64)
    loaded = load_recalibration(folder, "abc123")
    assert loaded.method == "closed_test" and loaded.selected == "intercept"
    # an artefact written before ``selected`` existed still loads
    state = json.loads((folder / "calibration.json").read_text())
    del state["selected"]
    state["method"] = "intercept"
    old = tmp_path / "old"
    old.mkdir()
    (old / "calibration.json").write_text(json.dumps(state))
    from mmdx.bundle import sha256_file

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["calibration.json"] = sha256_file(old / "calibration.json")
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert load_recalibration(old, "abc123").selected == ""
