"""Idle session timeout helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmdx.errors import MmdxError
from mmdx.store import DEFAULT_IDLE_TIMEOUT_S, SessionClock, is_session_expired

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def test_default_timeout_is_fifteen_minutes() -> None:
    assert DEFAULT_IDLE_TIMEOUT_S == 900
    assert not is_session_expired(T0, T0 + timedelta(minutes=15))
    assert is_session_expired(T0, T0 + timedelta(minutes=15, seconds=1))


@given(idle_s=st.floats(0, 10_000, allow_nan=False), timeout_s=st.floats(1, 5_000, allow_nan=False))
def test_expired_exactly_when_idle_longer_than_timeout(idle_s: float, timeout_s: float) -> None:
    now = T0 + timedelta(seconds=idle_s)
    expected = (now - T0).total_seconds() > timeout_s
    assert is_session_expired(T0, now, timeout_s) is expected


def test_time_zones_do_not_matter_and_future_activity_does_not_expire() -> None:
    elsewhere = timezone(timedelta(hours=-7))
    assert not is_session_expired(T0.astimezone(elsewhere), T0 + timedelta(minutes=10))
    assert not is_session_expired(T0 + timedelta(hours=1), T0)


@pytest.mark.parametrize(
    ("last", "now", "timeout", "message"),
    [
        (datetime(2025, 3, 1, 8, 0), T0, 900, "timezone-aware"),
        (T0, datetime(2025, 3, 1, 8, 0), 900, "timezone-aware"),
        ("08:00", T0, 900, "must be a datetime"),
        (T0, T0, 0, "positive number of seconds"),
        (T0, T0, -5, "positive number of seconds"),
        (T0, T0, True, "positive number of seconds"),
    ],
)
def test_bad_arguments_are_refused(last, now, timeout, message: str) -> None:  # noqa: ANN001
    with pytest.raises(MmdxError, match=message):
        is_session_expired(last, now, timeout)


def test_session_clock_touch_and_remaining() -> None:
    clock = SessionClock(timeout_s=60, last_activity=T0)
    assert clock.remaining_s(T0 + timedelta(seconds=20)) == pytest.approx(40)
    assert clock.expired(T0 + timedelta(seconds=61))
    clock.touch(T0 + timedelta(seconds=50))
    assert not clock.expired(T0 + timedelta(seconds=61))
    assert clock.remaining_s(T0 + timedelta(seconds=200)) == 0.0
    fresh = SessionClock()
    assert not fresh.expired()
    assert fresh.timeout_s == DEFAULT_IDLE_TIMEOUT_S
    with pytest.raises(MmdxError, match="timezone-aware"):
        SessionClock(last_activity=datetime(2025, 1, 1))
    with pytest.raises(MmdxError, match="positive"):
        SessionClock(timeout_s=0)
