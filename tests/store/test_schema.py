"""Opening a store: URLs, SQLite settings, idempotent and concurrent creation, schema version checks."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import traceback
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from mmdx.store import (
    SCHEMA_VERSION,
    ReviewStatus,
    ReviewStore,
    SchemaVersionError,
    StoreError,
    default_store_url,
)
from mmdx.store.engine import create_store_engine, parse_store_url
from tests.support.postgres import open_store, report_to

TABLES = {"users", "verdicts", "audit_events", "mmdx_meta"}


def _execute(url, statement: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def test_default_store_url_is_an_absolute_sqlite_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_store_url(tmp_path) == f"sqlite:///{tmp_path.resolve().as_posix()}/review.sqlite"
    monkeypatch.chdir(tmp_path)
    assert (
        default_store_url("runs/demo") == f"sqlite:///{tmp_path.resolve().as_posix()}/runs/demo/review.sqlite"
    )


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///x.sqlite", "sqlite"),
        ("postgresql://u:p@db.example/mmdx", "postgresql+psycopg"),
        ("postgresql+psycopg://u:p@db.example/mmdx", "postgresql+psycopg"),
    ],
)
def test_accepted_urls(url: str, driver: str) -> None:
    assert parse_store_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "cannot parse the review store URL"),
        ("mysql://u:secret@h/db", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u:secret@h/db", "use postgresql\\+psycopg://"),
        ("sqlite+pysqlcipher:///x", "unsupported SQLite driver"),
    ],
)
def test_refused_urls_say_what_to_use(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        ReviewStore(url)
    assert "secret" not in str(caught.value)


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot open the review store") as caught:
        ReviewStore("postgresql+psycopg://mmdx:s3cret-pw@127.0.0.1:1/mmdx?connect_timeout=2")
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        ReviewStore(default_store_url(tmp_path / "no" / "such" / "run"))


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_store_engine(parse_store_url(default_store_url(tmp_path)), busy_timeout_s=7.5)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7500
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_in_memory_sqlite_store_works(sign_up, submit) -> None:
    with ReviewStore("sqlite://", bcrypt_rounds=4) as store:
        alice = sign_up(store, "alice", "clinician")
        submit(store, alice, "c1")
        assert store.review_status(alice, "run1", ["c1"]) == {"c1": ReviewStatus.REVIEWED_BY_ME}


def test_reopening_is_idempotent_and_keeps_data(store_url: str, password, sign_up, submit) -> None:
    with ReviewStore(store_url, bcrypt_rounds=4) as first:
        alice = sign_up(first, "alice", "clinician")
        record = submit(first, alice, "c1")
    for _ in range(2):
        with ReviewStore(store_url, bcrypt_rounds=4) as again:
            alice = again.authenticate("alice", password)
            assert again.verdict_history(alice, "run1", "c1") == [record]
    assert _execute(store_url, "SELECT key, value FROM mmdx_meta") == [
        ("schema_version", str(SCHEMA_VERSION))
    ]


def test_newer_schema_version_is_refused_without_touching_the_store(store_url: str) -> None:
    ReviewStore(store_url, bcrypt_rounds=4).close()
    _execute(store_url, f"UPDATE mmdx_meta SET value = '{SCHEMA_VERSION + 1}'")
    _execute(store_url, "DROP TABLE audit_events")  # a newer layout, say
    with pytest.raises(SchemaVersionError) as caught:
        ReviewStore(store_url)
    message = str(caught.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"understands versions up to {SCHEMA_VERSION}" in message
    assert "Upgrade mmdx" in message and "not modified" in message
    engine = create_engine(store_url)
    try:
        assert "audit_events" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("0", SchemaVersionError, "older than this mmdx"),
        ("banana", StoreError, "unreadable schema version 'banana'"),
    ],
)
def test_older_or_unreadable_schema_version_is_refused(
    store_url: str, value: str, error: type[Exception], message: str
) -> None:
    ReviewStore(store_url, bcrypt_rounds=4).close()
    _execute(store_url, f"UPDATE mmdx_meta SET value = '{value}'")
    with pytest.raises(error, match=message):
        ReviewStore(store_url)


def _assert_created_once(url: str) -> None:
    assert _execute(url, "SELECT key, value FROM mmdx_meta") == [("schema_version", str(SCHEMA_VERSION))]
    engine = create_engine(url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_concurrent_first_opens_of_sqlite_from_processes(tmp_path: Path) -> None:
    url = default_store_url(tmp_path)
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(4), context.Queue()
    processes = [
        context.Process(target=report_to, args=(queue, str(i), open_store, url), kwargs={"barrier": barrier})
        for i in range(4)
    ]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [status for _, status, _ in reports] == ["ok"] * 4, reports
    assert [p.exitcode for p in processes] == [0] * 4
    _assert_created_once(url)
    triggers = _execute(url, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
    assert len(triggers) == 4


@pytest.mark.postgres
def test_concurrent_first_opens_of_postgresql_from_threads(postgres_url: str) -> None:
    barrier = threading.Barrier(6)
    failures: list[str] = []

    def open_store() -> None:
        try:
            barrier.wait(timeout=60)
            ReviewStore(postgres_url, bcrypt_rounds=4).close()
        except BaseException:
            failures.append(traceback.format_exc())

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    _assert_created_once(postgres_url)


def test_sqlite_writer_waits_for_another_process_lock(tmp_path: Path, sign_up, submit) -> None:
    url = default_store_url(tmp_path)
    with ReviewStore(url, bcrypt_rounds=4) as store:
        alice = sign_up(store, "alice", "clinician")
        blocker = sqlite3.connect(tmp_path / "review.sqlite", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        results: list[object] = []
        writer = threading.Thread(target=lambda: results.append(submit(store, alice, "c1")))
        started = time.monotonic()
        writer.start()
        time.sleep(0.6)
        assert writer.is_alive() and results == []  # waiting, not failed
        blocker.execute("COMMIT")
        blocker.close()
        writer.join(timeout=30)
        assert time.monotonic() - started >= 0.5
        assert len(results) == 1 and results[0].case_id == "c1"


def test_sqlite_writer_gives_up_with_a_clear_error_after_the_busy_timeout(
    tmp_path: Path, sign_up, submit
) -> None:
    url = default_store_url(tmp_path)
    with ReviewStore(url, bcrypt_rounds=4, busy_timeout_s=0.2) as store:
        alice = sign_up(store, "alice", "clinician")
        blocker = sqlite3.connect(tmp_path / "review.sqlite", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match="database is locked"):
                submit(store, alice, "c1")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.verdict_history(alice, "run1", "c1") == []


def test_a_locked_new_sqlite_file_is_retried_and_other_errors_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "database is locked" where SQLite calls no busy handler (a concurrent first open switching the file to
    WAL) is waited out; any other operational error is reported at once."""
    from sqlalchemy.exc import OperationalError

    from mmdx.store import engine as store_engine

    real, calls = store_engine._create_or_check, []

    def locked_twice(engine) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        real(engine)

    monkeypatch.setattr(store_engine, "_create_or_check", locked_twice)
    url = default_store_url(tmp_path)
    ReviewStore(url, bcrypt_rounds=4).close()
    assert len(calls) == 3
    _assert_created_once(url)

    def broken(engine) -> None:
        calls.append(1)
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("disk I/O error"))

    calls.clear()
    monkeypatch.setattr(store_engine, "_create_or_check", broken)
    (tmp_path / "other").mkdir()
    with pytest.raises(StoreError, match="disk I/O error"):
        ReviewStore(default_store_url(tmp_path / "other"), bcrypt_rounds=4)
    assert len(calls) == 1
