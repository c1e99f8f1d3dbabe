"""A throwaway PostgreSQL server for tests and benchmarks of the review store.

:class:`TemporaryPostgres` runs ``initdb`` and ``pg_ctl`` from Debian's packages
(``apt-get install postgresql`` puts them in ``/usr/lib/postgresql/<version>/bin``) on a data directory in a
temporary folder, listening on 127.0.0.1 only, on a free port, with password authentication and a random
password. As root it runs the server as the ``postgres`` system user, because ``initdb`` refuses to run as
root. Nothing outside the temporary folder is touched, and :meth:`TemporaryPostgres.stop` removes it.

:func:`create_database` / :func:`drop_database` give a test session or benchmark a database of its own on
any server whose user may create databases (``MMDX_TEST_POSTGRES_URL`` or a temporary server), and
:func:`create_schema` / :func:`drop_schema` give each test a fresh, empty schema in it.

:func:`write_verdicts`, :func:`open_store` and :func:`report_to` are the bodies of the writer processes of
the concurrency test and of ``benchmarks/store_throughput.py``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from mmdx.store.engine import parse_store_url
from mmdx.store.errors import StoreError
from mmdx.store.passwords import MIN_BCRYPT_ROUNDS
from mmdx.store.records import Operator, Verdict
from mmdx.store.review_store import ReviewStore

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(StoreError):
    """No PostgreSQL server could be started here (binaries missing, no user to run them as, start failed)."""


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``, else the
    directory of ``initdb`` on ``PATH``, else ``None``."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)

    candidates = sorted(Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/")), key=version, reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _others_may_traverse(folder: Path) -> bool:
    """True when every folder from / down to ``folder`` lets other users pass through (o+x)."""
    folder = folder.resolve()
    return all(p.stat().st_mode & 0o001 for p in (folder, *folder.parents))


class TemporaryPostgres:
    """A private PostgreSQL server in a temporary folder; use as a context manager or ``start``/``stop``.

    Args:
        durable: keep PostgreSQL's default crash safety (fsync on every commit). ``False`` (tests) turns
            fsync, synchronous commit and full page writes off: much faster, and a crash loses nothing
            that a test needs.
        bin_dir: folder with ``initdb`` and ``pg_ctl``; found automatically when ``None``.
    """

    def __init__(self, *, durable: bool = False, bin_dir: Path | None = None) -> None:
        self.durable = durable
        self.bin_dir = bin_dir
        self.url: str | None = None
        self._root: Path | None = None
        self._run_as: str | None = None

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _command(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        if shutil.which("runuser"):
            return ["runuser", "-u", self._run_as, "--", *args]
        return ["su", self._run_as, "-s", "/bin/sh", "-c", shlex.join(args)]

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        # cwd: the server's user may not be allowed into the caller's working directory.
        return subprocess.run(
            self._command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            cwd=self._root,
        )

    def start(self) -> str:
        """Create and start the server; return an admin URL (``postgresql+psycopg://``, database
        ``postgres``). Raises :class:`PostgresUnavailable` with the reason when it cannot."""
        if self.url is not None:
            return self.url
        bin_dir = self.bin_dir or find_postgres_bin()
        if bin_dir is None:
            raise PostgresUnavailable(f"no initdb/pg_ctl found in {POSTGRES_BIN_GLOB} or on PATH")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and no 'postgres' user to run the server as"
                ) from None
            self._run_as = "postgres"
        base = Path(tempfile.gettempdir())
        if self._run_as is not None and not _others_may_traverse(base):
            base = Path("/tmp")  # the server's user must be able to reach its data folder
        self._root = Path(tempfile.mkdtemp(prefix="mmdx-postgres-", dir=base))
        atexit.register(self.stop)
        data = self._root / "data"
        pwfile = self._root / "pwfile"
        password = secrets.token_hex(16)
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self._run_as is not None:
            for path in (self._root, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            init = self._run(
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "mmdx",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
                "--no-sync",  # the folder is thrown away; a crash during initdb just fails the start
            )
            if init.returncode != 0:
                raise PostgresUnavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-2000:]}")
            options = ["-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self._root}"]
            if not self.durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            log = self._root / "server.log"
            for _ in range(3):  # the free port may be taken between probing and binding
                port = _free_port()
                started = self._run(
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    " ".join([*options, f"-p {port}"]),
                )
                if started.returncode == 0:
                    break
            else:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else started.stderr
                raise PostgresUnavailable(f"pg_ctl start failed: {tail.strip()}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.stop()
            raise PostgresUnavailable(f"could not run PostgreSQL's binaries: {exc}") from None
        except PostgresUnavailable:
            self.stop()
            raise
        self._bin_dir, self._data = bin_dir, data
        self.url = URL.create(
            "postgresql+psycopg",
            username="mmdx",
            password=password,
            host="127.0.0.1",
            port=port,
            database="postgres",
        ).render_as_string(hide_password=False)
        return self.url

    def stop(self) -> None:
        """Stop the server (if running) and delete its folder. Safe to call twice."""
        root, self._root = self._root, None
        if root is None:
            return
        data = root / "data"
        if self.url is not None and (data / "postmaster.pid").exists():
            # "immediate": no shutdown checkpoint, the data is deleted next anyway.
            self._run(
                str(self._bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", timeout=60
            )
        self.url = None
        shutil.rmtree(root, ignore_errors=True)


def _admin_engine(admin_url: str) -> Engine:
    return create_engine(parse_store_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def _execute_autocommit(url: str, statement: str) -> None:
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _check_identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise StoreError(f"invalid database or schema name {name!r}: use lower-case letters, digits and _")
    return name


def create_database(admin_url: str, name: str | None = None) -> str:
    """Create an empty database on the server of ``admin_url`` and return a store URL for it."""
    name = _check_identifier(name or f"mmdx_{secrets.token_hex(6)}")
    _execute_autocommit(admin_url, f'CREATE DATABASE "{name}"')
    return parse_store_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database made by :func:`create_database`, closing any connections still open to it."""
    _execute_autocommit(admin_url, f'DROP DATABASE IF EXISTS "{_check_identifier(name)}" WITH (FORCE)')


def create_schema(database_url: str, name: str | None = None) -> str:
    """Create an empty schema in the database of ``database_url``; return a store URL whose connections
    use it (``search_path``). Much cheaper than a database per test."""
    name = _check_identifier(name or f"mmdx_{secrets.token_hex(6)}")
    _execute_autocommit(database_url, f'CREATE SCHEMA "{name}"')
    url = parse_store_url(database_url)
    return url.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(hide_password=False)


def drop_schema(database_url: str, name: str) -> None:
    """Drop a schema made by :func:`create_schema` with everything in it."""
    _execute_autocommit(database_url, f'DROP SCHEMA IF EXISTS "{_check_identifier(name)}" CASCADE')


# ---------------------------------------------------------------------------------------------------------
# Writer processes for the concurrency test and the throughput benchmark. They live here, not in a test
# module, because a process started with the 'spawn' method must import its target by module name.

VERDICT_CYCLE = (Verdict.AGREE, Verdict.DISAGREE, Verdict.UNSURE)


def write_verdicts(
    store_url: str,
    name: str,
    password: str,
    *,
    run_id: str,
    count: int,
    tag: str,
    cases: int = 20,
    barrier: Any = None,
) -> float:
    """Sign in as ``name`` and append ``count`` verdicts on run ``run_id``, verdict ``i`` on case
    ``case-{i % cases:03d}`` with comment ``"{tag}:{i}"``. Waits at ``barrier`` (if given) after signing in
    so that concurrent writers start together. Returns the seconds spent writing."""
    with ReviewStore(store_url, bcrypt_rounds=MIN_BCRYPT_ROUNDS) as store:
        principal = store.authenticate(name, password)
        if principal is None:
            raise StoreError(f"cannot sign in as '{name}' to {store!r}")
        if barrier is not None:
            barrier.wait(timeout=300)
        started = time.perf_counter()
        for i in range(count):
            store.submit_verdict(
                principal,
                run_id,
                f"case-{i % cases:03d}",
                VERDICT_CYCLE[i % len(VERDICT_CYCLE)],
                "",
                1 + i % 5,
                f"{tag}:{i}",
                [],
                "bench-model",
                "bench-explanations",
            )
        return time.perf_counter() - started


def open_store(store_url: str, barrier: Any = None) -> int:
    """Open (and so create, on first use) a store and return its number of accounts."""
    if barrier is not None:
        barrier.wait(timeout=300)
    with ReviewStore(store_url, bcrypt_rounds=MIN_BCRYPT_ROUNDS) as store:
        return len(store.list_users(Operator("testing")))


def report_to(queue: Any, key: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Process entry point: run ``function`` and put ``(key, "ok", result)`` or ``(key, "error",
    traceback)`` on ``queue``; the process exits non-zero on error."""
    try:
        result = function(*args, **kwargs)
    except BaseException:
        queue.put((key, "error", traceback.format_exc()))
        raise
    queue.put((key, "ok", result))
