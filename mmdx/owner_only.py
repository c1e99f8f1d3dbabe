"""Files readable and writable by their owner only (mode 0600), for what holds patient-level data or
credentials: the review store's database with its WAL and shared-memory files, prediction tables, exports of
verdicts and of the audit trail, validation reports.

A file is created with mode 0600 from the start (``os.open`` with an explicit mode), not narrowed after it
was written, so there is no moment in which another account could open it. The umask can only take
permissions away, never add them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

OWNER_ONLY = 0o600


def open_owner_only(path: str | Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """Open ``path`` for writing (``"w"`` or ``"wb"``; created or truncated) with mode 0600; an existing file
    is narrowed to 0600 too, since its old content is being replaced by new patient-level content."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_owner_only writes files: mode must be 'w' or 'wb', got {mode!r}")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
    try:
        os.fchmod(descriptor, OWNER_ONLY)
        return os.fdopen(descriptor, mode, **kwargs)
    except BaseException:
        os.close(descriptor)
        raise


def prepare_owner_only(path: str | Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist, so that a program creating it later (SQLite,
    which gives its -wal and -shm files the permissions of the database file) starts from 0600. An existing
    file keeps its permissions: they may be an administrator's deliberate choice."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    except FileExistsError:
        return
    os.close(descriptor)


def write_text_owner_only(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with mode 0600."""
    with open_owner_only(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_table_owner_only(frame: Any, path: str | Path) -> None:
    """Write a pandas DataFrame as Parquet (``.parquet``) or CSV (anything else) with mode 0600."""
    if Path(path).suffix == ".parquet":
        with open_owner_only(path, "wb") as handle:
            frame.to_parquet(handle, index=False)
    else:
        with open_owner_only(path, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False)
