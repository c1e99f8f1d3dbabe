"""Password hashing and CSV cell neutralisation, without a database."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdx.store import AccountError, neutralise_cell
from mmdx.store.csv_export import FORMULA_PREFIXES, write_csv
from mmdx.store.passwords import check_password_policy, check_rounds, hash_password, verify_password


@settings(max_examples=25, deadline=None)
@given(password=st.text(min_size=8, max_size=120).filter(str.strip))
def test_hash_round_trips_and_is_salted(password: str) -> None:
    first, second = hash_password(password, rounds=4), hash_password(password, rounds=4)
    assert first != second  # fresh salt each time
    assert password not in first
    assert verify_password(password, first) and verify_password(password, second)
    assert not verify_password(password + "x", first)


def test_characters_past_72_bytes_matter() -> None:
    base = "é" * 40  # 80 UTF-8 bytes
    stored = hash_password(base + "A", rounds=4)
    assert verify_password(base + "A", stored)
    assert not verify_password(base + "B", stored)


def test_nul_bytes_do_not_end_the_password() -> None:
    stored = hash_password("abc\x00defgh-1", rounds=4)
    assert not verify_password("abc\x00defgh-2", stored)


def test_malformed_stored_hash_never_matches() -> None:
    assert not verify_password("whatever123", "not-a-bcrypt-hash")
    assert not verify_password(None, hash_password("whatever123", rounds=4))  # type: ignore[arg-type]


@pytest.mark.parametrize("rounds", [3, 21, 4.0, True, "12"])
def test_rounds_out_of_range_are_refused(rounds: object) -> None:
    with pytest.raises(AccountError, match="bcrypt rounds"):
        check_rounds(rounds)  # type: ignore[arg-type]


def test_policy_accepts_eight_characters_and_refuses_seven() -> None:
    assert check_password_policy("12345678") == "12345678"
    with pytest.raises(AccountError, match="got 7 characters, need at least 8"):
        check_password_policy("1234567")
    with pytest.raises(AccountError, match="must be a string"):
        check_password_policy(12345678)


@given(st.text())
def test_neutralised_cells_never_start_a_formula(value: str) -> None:
    cell = neutralise_cell(value)
    assert not cell.startswith(FORMULA_PREFIXES)
    assert cell in (value, "'" + value)
    assert (cell != value) == value.startswith(FORMULA_PREFIXES)


def test_numbers_pass_through_and_csv_round_trips() -> None:
    assert neutralise_cell(-3) == -3
    handle = io.StringIO()
    rows = [[-1, "=1+2", "\tx", "plain, with comma", 'quote "q"', "multi\nline"]]
    assert write_csv(handle, ["a", "b", "c", "d", "e", "f"], rows) == 1
    [parsed] = list(csv.reader(io.StringIO(handle.getvalue())))[1:]
    assert parsed == ["-1", "'=1+2", "'\tx", "plain, with comma", 'quote "q"', "multi\nline"]


def test_write_csv_refuses_binary_handles() -> None:
    with pytest.raises(TypeError, match="binary"):
        write_csv(io.BytesIO(), ["a"], [])
