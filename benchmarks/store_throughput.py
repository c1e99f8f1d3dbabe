"""Verdict write throughput of the review store on SQLite and PostgreSQL.

Each verdict is one ``submit_verdict`` call: one transaction that checks the principal, finds the user's
previous verdict on the case, and appends the verdict and its audit event. Measured with one writer, and
with several writer processes started together (each signed in as its own account).

Both backends keep their crash-safe defaults: SQLite in WAL mode with synchronous=FULL, and PostgreSQL
with fsync on (a throwaway server started here, unless --postgres names one).

    python benchmarks/store_throughput.py --verdicts 400 --writers 8 --json store_throughput.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sqlite3
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from sqlalchemy import create_engine, func, select, text

from mmdx.store import Operator, ReviewStore, default_store_url
from mmdx.store.schema import VerdictRow
from tests.support.postgres import (
    PostgresUnavailable,
    TemporaryPostgres,
    create_database,
    drop_database,
    report_to,
    write_verdicts,
)

PASSWORD = "benchmark passphrase"


@dataclass
class Result:
    backend: str
    writers: int
    verdicts: int  # in total
    seconds: float  # wall time of the slowest writer, all starting together
    per_second: float
    rows_checked: int  # verdict rows found in the store afterwards


def _prepare(url: str, writers: int) -> None:
    with ReviewStore(url, bcrypt_rounds=4) as store:
        for w in range(writers):
            store.add_user(f"writer{w}", "clinician", PASSWORD, actor=Operator("benchmark"))


def _count(url: str, run_id: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(VerdictRow.run_id == run_id)).scalar_one()
    finally:
        engine.dispose()


def measure(backend: str, url: str, writers: int, per_writer: int) -> list[Result]:
    _prepare(url, max(writers, 1))
    results = []

    seconds = write_verdicts(url, "writer0", PASSWORD, run_id="single", count=per_writer, tag="single")
    rows = _count(url, "single")
    results.append(Result(backend, 1, per_writer, seconds, per_writer / seconds, rows))

    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(
            target=report_to,
            args=(queue, f"w{w}", write_verdicts, url, f"writer{w}", PASSWORD),
            kwargs={"run_id": "concurrent", "count": per_writer, "tag": f"w{w}", "barrier": barrier},
        )
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
    failed = [r for r in reports if r[1] != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} writer(s) failed:\n" + "\n".join(r[2] for r in failed))
    slowest = max(r[2] for r in reports)
    total = writers * per_writer
    results.append(Result(backend, writers, total, slowest, total / slowest, _count(url, "concurrent")))
    return results


def _postgres_version(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--verdicts", type=int, default=400, help="verdicts per writer (default 400)")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer processes (default 8)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="server URL whose user may create databases (default: start a throwaway server)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.verdicts < 1 or args.writers < 1:
        parser.error("--verdicts and --writers must be positive")

    results: list[Result] = []
    environment = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
    }
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mmdx-bench-"))
        results += measure("sqlite", default_store_url(folder), args.writers, args.verdicts)

        if not args.no_postgres:
            admin_url = args.postgres
            if admin_url is None:
                server = TemporaryPostgres(durable=True)
                try:
                    admin_url = server.start()
                except PostgresUnavailable as exc:
                    print(f"PostgreSQL skipped: {exc} (apt-get install postgresql, or pass --postgres URL)")
                else:
                    stack.callback(server.stop)
            if admin_url is not None:
                url = create_database(admin_url, "mmdx_bench")
                stack.callback(drop_database, admin_url, "mmdx_bench")
                environment["postgresql"] = _postgres_version(url)
                results += measure("postgresql", url, args.writers, args.verdicts)

    print(f"{'backend':<11} {'writers':>7} {'verdicts':>8} {'seconds':>8} {'verdicts/s':>10}")
    for r in results:
        print(f"{r.backend:<11} {r.writers:>7} {r.verdicts:>8} {r.seconds:>8.2f} {r.per_second:>10.0f}")
    lost = [r for r in results if r.rows_checked != r.verdicts]
    for r in lost:
        print(f"ERROR: {r.backend} with {r.writers} writers stored {r.rows_checked} of {r.verdicts} verdicts")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"environment": environment, "results": [asdict(r) for r in results]}, fh, indent=2)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
