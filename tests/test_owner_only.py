"""Files holding patient-level data or credentials are created readable by their owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from mmdx.owner_only import open_owner_only, prepare_owner_only
from mmdx.store import Operator, ReviewStore, Role
from mmdx.store.passwords import MIN_BCRYPT_ROUNDS


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _permissive_umask():
    """The usual umask of a workstation, under which files are created world-readable (0644)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize("existing", [False, True])
def test_open_owner_only_creates_or_narrows(tmp_path: Path, existing: bool) -> None:
    path = tmp_path / "out.csv"
    if existing:
        path.write_text("old")
        path.chmod(0o644)
    with open_owner_only(path, "w") as handle:
        handle.write("new")
    assert path.read_text() == "new" and mode(path) == 0o600


def test_prepare_owner_only_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared.sqlite"
    shared.write_bytes(b"")
    shared.chmod(0o640)  # an administrator's deliberate choice
    prepare_owner_only(shared)
    assert mode(shared) == 0o640
    prepare_owner_only(tmp_path / "new.sqlite")
    assert mode(tmp_path / "new.sqlite") == 0o600


def test_review_store_and_its_wal_and_shm_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "somewhere" / "review.sqlite"
    path.parent.mkdir()
    store = ReviewStore(f"sqlite:///{path}", bcrypt_rounds=MIN_BCRYPT_ROUNDS)
    try:
        store.add_user("alice", Role.ADMIN, "correct horse battery", actor=Operator("tests"))
        assert store.authenticate("alice", "correct horse battery") is not None
        files = [path, path.with_name("review.sqlite-wal"), path.with_name("review.sqlite-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        store.close()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_out_is_owner_only(
    tiny_run: Path, small_cohort_2d: Path, tmp_path: Path, suffix: str
) -> None:
    from mmdx.workflows.predict import predict_cohort

    out = tmp_path / f"predictions{suffix}"
    predict_cohort(tiny_run, small_cohort_2d, out, workers=1)
    assert mode(out) == 0o600
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert "patient_id" in frame.columns and len(frame) > 0


def test_exports_and_the_validation_report_are_owner_only(tmp_path: Path, small_cohort_2d: Path) -> None:
    from mmdx.data.validation import validate_cohort

    store = ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}", bcrypt_rounds=MIN_BCRYPT_ROUNDS)
    try:
        store.add_user("aud", Role.AUDITOR, "correct horse battery", actor=Operator("tests"))
        auditor = store.authenticate("aud", "correct horse battery")
        store.export_verdicts_csv(auditor, "run", tmp_path / "verdicts.csv")
        store.export_audit_csv(auditor, tmp_path / "audit.csv")
    finally:
        store.close()
    validate_cohort(small_cohort_2d, check_images=False).report.write(tmp_path / "validation.json")
    for name in ("verdicts.csv", "audit.csv", "validation.json"):
        assert mode(tmp_path / name) == 0o600, name
