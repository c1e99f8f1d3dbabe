"""The ``mmdx`` command line. Each subcommand lives in its own module with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from mmdx import __version__
from mmdx.errors import MmdxError

#: subcommand -> module in ``pipelines`` (imported only when that subcommand runs, so --help is fast)
COMMANDS: dict[str, str] = {
    "synth": "pipelines.synth",
    "validate": "pipelines.validate",
    "train": "pipelines.train",
    "evaluate": "pipelines.evaluate",
    "predict": "pipelines.predict",
    "explain": "pipelines.explain",
    "audit": "pipelines.audit",
    "review": "pipelines.review",
    "users": "pipelines.users",
    "deid": "pipelines.deid",
    "demo": "pipelines.demo",
}

DESCRIPTION = """\
mmdx: multimodal medical diagnosis on patient cohorts.

A cohort directory (cohort.yaml, cases.csv, observations.csv, notes.jsonl, images) goes in; a model fusing
imaging, vital signs/labs and clinical notes comes out, with explanations, a clinician review dashboard and
an audit report. Typical flow:

  mmdx synth cohorts/demo --cases 600 --defects   write a synthetic cohort
  mmdx validate cohorts/demo                      check every case, file and row
  mmdx train --config configs/demo.yaml --cohort cohorts/demo --out runs/demo
  mmdx evaluate runs/demo                         predictions.parquet + metrics.json
  mmdx explain runs/demo                          attributions per modality
  mmdx audit runs/demo                            HTML + JSON audit report
  mmdx review runs/demo                           the clinician dashboard

Run 'mmdx COMMAND --help' for the options of each command.
"""


def _available() -> dict[str, object]:
    modules = {}
    for name, module in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmdx", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"mmdx {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _available().values():
        module.add_parser(subparsers)  # type: ignore[attr-defined]
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    module = importlib.import_module(COMMANDS[args.command])
    try:
        return int(module.run(args) or 0)
    except MmdxError as exc:
        print(f"mmdx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"mmdx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmdx {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
