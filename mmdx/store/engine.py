"""Opening the review store's database: URL checks, SQLite settings, and first-open schema creation.

SQLite (the default, one file in the run directory) is opened in WAL mode, so readers never wait for the
writer, with a busy timeout, so writers from several processes queue instead of failing, and with foreign
keys on. Transactions that write start with ``BEGIN IMMEDIATE``: they take the write lock up front, which
the busy timeout can wait for, rather than upgrading a read lock later, which SQLite answers with an
immediate "database is locked". PostgreSQL (``postgresql+psycopg://``) serves multi-user deployments.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from mmdx.errors import MmdxError
from mmdx.owner_only import prepare_owner_only
from mmdx.run import RunPaths
from mmdx.store.errors import SchemaVersionError, StoreError
from mmdx.store.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, Base, MetaRow

DEFAULT_BUSY_TIMEOUT_S = 30.0
#: The environment variable that names the review store (a URL or a run directory).
STORE_ENV = "MMDX_STORE_URL"
#: Its former name, read (with a warning) when ``MMDX_STORE_URL`` is not set.
DEPRECATED_STORE_ENV = "MMDX_REVIEW_STORE_URL"

#: Connection execution option that makes the SQLite ``begin`` hook take the write lock at once.
WRITE_OPTION = "mmdx_write_transaction"

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key that serialises first opens of one PostgreSQL database ("mmdx" in ASCII).
_PG_INIT_LOCK = 0x6D6D6478

_EXAMPLES = "sqlite:///runs/demo/review.sqlite or postgresql+psycopg://user:password@host:5432/mmdx"


def default_store_url(run_dir: str | Path) -> str:
    """The SQLite store of a run: ``sqlite:///<absolute run_dir>/review.sqlite``."""
    return RunPaths(Path(run_dir)).review_store_url


def store_url_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``$MMDX_STORE_URL``, else the deprecated ``$MMDX_REVIEW_STORE_URL`` (with a warning), else None."""
    environ = os.environ if environ is None else environ
    value = environ.get(STORE_ENV, "").strip()
    if value:
        return value
    value = environ.get(DEPRECATED_STORE_ENV, "").strip()
    if value:
        log.warning("%s is deprecated; set %s instead (same value)", DEPRECATED_STORE_ENV, STORE_ENV)
        return value
    return None


def resolve_store_url(
    store: str | None = None,
    run_dir: str | Path | None = None,
    *,
    existing_only: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The review store to open: the one place where ``--store``, the environment and a run's own store
    are weighed.

    The first of: ``store`` (a URL, or a run directory meaning its ``review.sqlite``); ``$MMDX_STORE_URL``
    (the same forms); the run's own store when ``run_dir`` is given. None when none applies.

    ``existing_only`` (reading, e.g. the audit): a SQLite store named explicitly must exist, since opening
    a missing file would create an empty store, and the run's own store counts only when its file exists.
    Raises :class:`MmdxError` for a value that is neither a URL nor a directory, or a missing store.
    """
    value = store or store_url_from_environment(environ)
    if value:
        if "://" not in value:
            if not Path(value).is_dir():
                raise MmdxError(
                    f"--store {value!r} is neither a URL (sqlite:///..., postgresql+psycopg://...) nor a run "
                    "directory"
                )
            value = default_store_url(value)
        if existing_only:
            parsed = make_url(value)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                if not Path(parsed.database).is_file():
                    raise MmdxError(
                        f"review store not found: {parsed.database}; give an existing store with --store, or "
                        "leave --store out to audit without the clinician review"
                    )
        return value
    if run_dir is None:
        return None
    own = RunPaths(Path(run_dir))
    return own.review_store_url if own.review_store.is_file() or not existing_only else None


def require_store_url(store: str | None) -> str:
    """:func:`resolve_store_url` for commands that cannot go on without a store (``mmdx users``)."""
    url = resolve_store_url(store)
    if url is None:
        raise MmdxError(
            f"no review store given: pass --store URL (or a run directory), or set {STORE_ENV}, "
            "e.g. --store runs/demo or --store postgresql+psycopg://user@host/mmdx"
        )
    return url


def parse_store_url(url: str | URL) -> URL:
    """Check a store URL and fill in the driver: ``postgresql://`` means ``postgresql+psycopg://``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"cannot parse the review store URL {url!r} ({exc}); expected e.g. {_EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.get_driver_name() != "pysqlite":
            raise StoreError(
                f"unsupported SQLite driver '{parsed.drivername}' in the store URL; use plain sqlite:///PATH"
            )
        return parsed
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            return parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise StoreError(
                f"unsupported PostgreSQL driver '{parsed.drivername}' in the store URL; "
                "use postgresql+psycopg:// (psycopg 3)"
            )
        return parsed
    raise StoreError(
        f"unsupported database '{backend}' in the review store URL "
        f"{parsed.render_as_string(hide_password=True)}; expected SQLite or PostgreSQL, e.g. {_EXAMPLES}"
    )


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def create_store_engine(url: URL, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """An engine for a parsed store URL with the SQLite pragmas and transaction handling described above."""
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    kwargs: dict[str, Any] = {}
    if _is_memory(url):
        # One shared connection: each new connection to ":memory:" would be a new, empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        database = Path(url.database).expanduser().resolve()
        if not database.parent.is_dir():
            raise StoreError(
                f"cannot create the review store {display_url(url)}: the folder {database.parent} does not "
                "exist; create it first or point the URL elsewhere"
            )
        # password hashes, verdicts and the trail: owner-only, and SQLite gives -wal/-shm the same mode
        prepare_owner_only(database)
    engine = create_engine(url, **kwargs)
    busy_ms = int(busy_timeout_s * 1000)
    memory = _is_memory(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN (DML only) is switched off: the "begin" hook below emits BEGIN
        # for every transaction, which also makes DDL transactional.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")

    return engine


def initialise_schema(engine: Engine) -> None:
    """Create the tables if missing and check the stored schema version, safely against concurrent first
    opens: PostgreSQL serialises them with a transaction-scoped advisory lock, SQLite with its write lock.
    A store of another schema version is refused before anything in it is touched."""
    url = engine.url
    deadline = time.monotonic() + DEFAULT_BUSY_TIMEOUT_S
    delay = 0.05
    while True:
        try:
            _create_or_check(engine)
            return
        except OperationalError as exc:
            # Concurrent first opens of a new SQLite file can meet "database is locked" where SQLite does
            # not call the busy handler (switching the new file to WAL while another process holds it):
            # wait and retry for as long as the busy timeout would have waited.
            if engine.dialect.name == "sqlite" and "locked" in str(exc.orig) and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(2 * delay, 1.0)
                continue
            raise StoreError(
                f"cannot open the review store {display_url(url)}: {exc.orig}; check that the database "
                "server is running and the URL, user and password are right"
            ) from None


def _create_or_check(engine: Engine) -> None:
    """One try at creating the tables (if missing) and checking the stored schema version."""
    url = engine.url
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_INIT_LOCK})
        stored = _stored_version(conn)
        if stored is not None and stored != SCHEMA_VERSION:
            raise _version_error(url, stored)
        if stored is None:
            # Tables and version row are written in one transaction (DDL is transactional on both
            # backends here), so a stored version means the tables exist.
            Base.metadata.create_all(conn, checkfirst=True)
            conn.execute(MetaRow.__table__.insert().values(key=SCHEMA_VERSION_KEY, value=str(SCHEMA_VERSION)))


def _stored_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(MetaRow.__tablename__):
        return None
    value = conn.execute(select(MetaRow.value).where(MetaRow.key == SCHEMA_VERSION_KEY)).scalar_one_or_none()
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise StoreError(
            f"the review store {display_url(conn.engine.url)} has an unreadable schema version {value!r}; "
            "it was not written by mmdx or is damaged"
        ) from None


def _version_error(url: URL, stored: int) -> SchemaVersionError:
    where = display_url(url)
    if stored > SCHEMA_VERSION:
        return SchemaVersionError(
            f"the review store {where} has schema version {stored}, but this mmdx understands versions up "
            f"to {SCHEMA_VERSION}; it was written by a newer mmdx. Upgrade mmdx to open it, or use another "
            "store URL. The store was not modified."
        )
    return SchemaVersionError(
        f"the review store {where} has schema version {stored}, older than this mmdx's version "
        f"{SCHEMA_VERSION}, and no migration exists for it; open it with the mmdx release that wrote it "
        "and export what you need. The store was not modified."
    )
