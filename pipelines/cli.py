"""The ``mmdx`` command line. Each subcommand lives in its own module with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from mmdx import __version__
from mmdx.errors import MmdxError

#: subcommand -> module in ``pipelines``; each defines ``add_parser(subparsers)`` and ``run(args)``
COMMANDS: dict[str, str] = {
    "synth": "pipelines.synth",
    "validate": "pipelines.validate",
    "plan": "pipelines.plan",
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
  mmdx plan cohorts/demo                          the image fingerprint and preprocessing plan
  mmdx train --config configs/demo.yaml --cohort cohorts/demo --out runs/demo
  mmdx evaluate runs/demo                         predictions.parquet + metrics.json
  mmdx explain runs/demo                          attributions per modality
  mmdx audit runs/demo                            HTML + JSON audit report
  mmdx review runs/demo                           the clinician dashboard

Run 'mmdx COMMAND --help' for the options of each command.
"""


def _available() -> tuple[dict[str, object], dict[str, str]]:
    """The importable subcommand modules, and for the others the missing package that stops them.

    A command whose own dependency is not installed (say sqlalchemy for ``audit`` in a training-only
    environment) must not take the other commands down with it: it stays listed and says what to install.
    """
    modules: dict[str, object] = {}
    missing: dict[str, str] = {}
    for name, module in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module or not exc.name:
                raise
            missing[name] = exc.name.split(".")[0]
    return modules, missing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmdx", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"mmdx {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules, missing = _available()
    for module in modules.values():
        module.add_parser(subparsers)  # type: ignore[attr-defined]
    for name, package in missing.items():
        sub = subparsers.add_parser(name, help=f"(unavailable here: needs the Python package '{package}')")
        sub.set_defaults(missing_package=package)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    missing_package = getattr(args, "missing_package", None)
    if unknown and not missing_package:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if missing_package:
        print(
            f"mmdx {args.command}: error: this command needs the Python package '{missing_package}', "
            "which is not installed in this environment; install mmdx with its dependencies "
            "(pip install -e . from the project, or 'make setup') or that package alone",
            file=sys.stderr,
        )
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
    except Exception as exc:  # a fault of mmdx, not of the input: one line, the traceback only with -v
        if args.verbose:
            raise
        print(
            f"mmdx {args.command}: unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())[:500]} "
            f"(run 'mmdx -v {args.command} ...' for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
