"""The throwaway PostgreSQL server used by these tests and the benchmark."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.support.postgres import PostgresUnavailable, TemporaryPostgres


def test_missing_binaries_are_reported_and_leave_nothing_behind(tmp_path: Path) -> None:
    server = TemporaryPostgres(bin_dir=tmp_path / "no-such-bin")
    before = set(Path("/tmp").glob("mmdx-postgres-*"))
    with pytest.raises(PostgresUnavailable):
        server.start()
    assert set(Path("/tmp").glob("mmdx-postgres-*")) <= before
    server.stop()  # harmless after a failed start


@pytest.mark.postgres
def test_server_listens_on_loopback_only_and_needs_the_password(postgres_admin_url: str) -> None:
    if os.environ.get("MMDX_TEST_POSTGRES_URL"):
        pytest.skip("the server is configured from outside, not started by these tests")
    url = make_url(postgres_admin_url)
    assert url.host == "127.0.0.1" and url.password
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW listen_addresses")).scalar() == "127.0.0.1"
    finally:
        engine.dispose()
    wrong = create_engine(url.set(password="wrong-password"))
    try:
        with pytest.raises(OperationalError, match="password authentication failed"), wrong.connect():
            pass
    finally:
        wrong.dispose()
