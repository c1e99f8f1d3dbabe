"""The key: created owner-only, never inside the output, and the keyed functions behave."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdx.deid.key import DeidKey, load_or_create_key, read_key
from mmdx.errors import MmdxError

UID = re.compile(r"^2\.25\.(0|[1-9]\d*)$")


def test_created_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "cohort.key"
    key, created = load_or_create_key(path)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_key(path)
    assert not created_again
    assert again.fingerprint() == key.fingerprint()
    assert again.pseudonym("P", "x") == key.pseudonym("P", "x")
    assert key.to_text().split()[1] not in repr(key)  # the secret never shows in logs


def test_refuses_a_key_inside_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(MmdxError, match="must never be stored with the de-identified data"):
        load_or_create_key(out / "nested" / "k.key", forbidden=(out,))
    assert not (out / "nested" / "k.key").exists()


def test_refuses_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text("hunter2\n")
    with pytest.raises(MmdxError, match="not an mmdx de-identification key"):
        read_key(path)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_uids_are_valid_and_consistent(original: str) -> None:
    key = DeidKey(b"\x07" * 32)
    uid = key.uid(original)
    assert UID.match(uid) and len(uid) <= 64
    assert key.uid(original) == uid
    assert DeidKey(b"\x08" * 32).uid(original) != uid


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_day_shift_and_pseudonyms(patient: str) -> None:
    key = DeidKey(b"\x07" * 32)
    assert -365 <= key.day_shift(patient) <= -1
    assert re.fullmatch(r"P-[0-9a-f]{10}", key.pseudonym("P", patient))


def test_shifts_spread_over_the_year() -> None:
    key = DeidKey(b"\x01" * 32)
    shifts = {key.day_shift(f"patient-{i}") for i in range(500)}
    assert len(shifts) > 200 and min(shifts) >= -365 and max(shifts) <= -1
