"""The importers' registry: one :class:`ImporterSpec` per source, from which ``mmdx import SOURCE`` is built.

This module stays light (no pandas, pyarrow or database driver at import time) because the command line
imports it to list the sources; each source module imports its heavy dependencies inside its functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from mmdx.registry import Registry


@dataclass(frozen=True)
class ImporterSpec:
    """One source format.

    ``name``: the ``mmdx import`` subcommand; ``help``: one line for ``mmdx import --help``;
    ``description``: the subcommand's ``--help`` text; ``add_arguments(parser)`` declares its arguments;
    ``run(args) -> int`` runs it from parsed arguments and returns the exit status (raising
    :class:`~mmdx.errors.MmdxError` for bad input, which the command line prints in one line).
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


IMPORTERS: Registry[ImporterSpec] = Registry("importer")


def add_cohort_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every importer that writes a new cohort directory shares."""
    parser.add_argument(
        "out",
        metavar="OUT",
        help="the cohort directory to write (new or empty; or an interrupted import to resume)",
    )
    parser.add_argument(
        "--lookback",
        metavar="KIND=DURATION",
        action="append",
        default=[],
        help=(
            "look-back window before the index time for one kind of record, as an ISO 8601 duration; "
            "kinds: vital, lab (the feature catalogue's kinds), note, image; repeatable, e.g. "
            "--lookback vital=P1D --lookback lab=P7D. Written to cohort.yaml so validation enforces it too"
        ),
    )
    parser.add_argument("--name", help="cohort name in cohort.yaml (default: the OUT folder's name)")
    parser.add_argument(
        "--positive",
        default="positive",
        help="what label 1 means, for cohort.yaml's task.positive (default 'positive')",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=20000,
        help="records per committed unit: the import resumes from the last committed unit (default 20000)",
    )


def parse_lookback(values: list[str]) -> dict[str, str]:
    """``["vital=P1D", "lab=P7D"]`` -> ``{"vital": "P1D", "lab": "P7D"}``; the durations are checked later."""
    from mmdx.errors import MmdxError

    out = {}
    for value in values:
        kind, sep, duration = value.partition("=")
        if not sep or not kind.strip() or not duration.strip():
            raise MmdxError(f"--lookback {value!r}: write KIND=DURATION, e.g. --lookback lab=P7D")
        out[kind.strip()] = duration.strip()
    return out


# the built-in sources register themselves when imported, in this order (that of ``mmdx import --help``):
# those that write a cohort directory, then the one that fills an existing cohort's images; a new source adds
# its module here
from mmdx.importers import fhir, meds, omop  # noqa: E402,F401

# isort: split
from mmdx.importers import dicomweb  # noqa: E402,F401
