"""The ``mmdx`` command line. Each subcommand lives in its own module with ``add_parser`` and ``run``, listed in
:data:`COMMANDS`; a command's work is a workflow of :mod:`mmdx.workflows`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass

from mmdx import __version__
from mmdx.errors import MmdxError
from mmdx.registry import Registry


@dataclass(frozen=True)
class CommandSpec:
    """One ``mmdx`` subcommand.

    Attributes:
        name: the subcommand (``mmdx train``).
        module: the module that defines ``add_parser(subparsers)`` and ``run(args)``.
        help: the line shown by ``mmdx --help``.
        requires: third-party packages the command cannot run without; one that is not installed marks the
            command unavailable in ``mmdx --help`` without importing anything.
    """

    name: str
    module: str
    help: str
    requires: tuple[str, ...] = ()


#: The subcommands, in the order ``mmdx --help`` lists them. A command's module is imported only when that
#: command runs, so ``mmdx --help`` stays fast whatever the commands import.
COMMANDS: Registry[CommandSpec] = Registry("command")
for _spec in (
    CommandSpec("synth", "pipelines.synth", "write a synthetic cohort", ("numpy", "pydicom", "nibabel")),
    CommandSpec(
        "validate", "pipelines.validate", "validate a cohort directory", ("pydicom", "nibabel", "rich")
    ),
    CommandSpec(
        "plan",
        "pipelines.plan",
        "print a cohort's image fingerprint and preprocessing plan",
        ("torch", "monai", "pydicom", "nibabel"),
    ),
    CommandSpec(
        "import",
        "pipelines.importing",
        "import hospital data (FHIR, MEDS, OMOP, DICOMweb) into a cohort",
        ("pyarrow",),
    ),
    CommandSpec("train", "pipelines.train", "train a model on a cohort", ("torch", "monai")),
    CommandSpec("evaluate", "pipelines.evaluate", "predict a cohort and compute metrics", ("torch", "monai")),
    CommandSpec("predict", "pipelines.predict", "predict a cohort with a trained bundle", ("torch", "monai")),
    CommandSpec(
        "explain",
        "pipelines.explain",
        "attributions per modality, Shapley values and sanity checks",
        ("torch", "captum"),
    ),
    CommandSpec(
        "audit",
        "pipelines.audit",
        "write the audit report of a run (HTML + JSON)",
        ("sqlalchemy", "jinja2", "matplotlib", "fairlearn"),
    ),
    CommandSpec(
        "review", "pipelines.review", "start the clinician review dashboard", ("streamlit", "sqlalchemy")
    ),
    CommandSpec(
        "users",
        "pipelines.users",
        "manage review accounts (clinician, auditor, admin)",
        ("sqlalchemy", "bcrypt"),
    ),
    CommandSpec("deid", "pipelines.deid", "write a de-identified copy of a cohort", ("pydicom", "nibabel")),
    CommandSpec(
        "export",
        "pipelines.export",
        "write explained cases as DICOM objects into a folder or a PACS",
        ("highdicom", "dicomweb_client"),
    ),
    CommandSpec("demo", "pipelines.demo", "run the whole workflow on a synthetic cohort"),
):
    COMMANDS.register(_spec)

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
  mmdx export runs/demo --dicomweb URL            results into the PACS (DICOM SR, Parametric Map)
  mmdx review runs/demo                           the clinician dashboard

Run 'mmdx COMMAND --help' for the options of each command.
"""


def _missing_requirement(spec: CommandSpec) -> str | None:
    """The first package the command requires that is not installed (looked up, not imported)."""
    for package in spec.requires:
        if importlib.util.find_spec(package) is None:
            return package
    return None


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line: the first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``mmdx`` parser; only ``command``'s module is imported (to add its options), the others are
    listed from :data:`COMMANDS`.

    A command whose module needs a package that is not installed (say sqlalchemy for ``audit`` in a
    training-only environment) must not take the other commands down with it: it stays listed and says
    what to install.
    """
    parser = argparse.ArgumentParser(
        prog="mmdx", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"mmdx {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for spec in COMMANDS:
        missing = _missing_requirement(spec)
        if spec.name == command and missing is None:
            try:
                importlib.import_module(spec.module).add_parser(subparsers)
                continue
            except ModuleNotFoundError as exc:
                if exc.name == spec.module or not exc.name:
                    raise
                missing = exc.name.split(".")[0]
        if missing is not None:
            sub = subparsers.add_parser(
                spec.name, help=f"(unavailable here: needs the Python package '{missing}')"
            )
            sub.set_defaults(missing_package=missing)
        else:
            subparsers.add_parser(spec.name, help=spec.help)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
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
    module = importlib.import_module(COMMANDS.get(args.command).module)
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
