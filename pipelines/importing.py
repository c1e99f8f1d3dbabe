"""``mmdx import SOURCE ...``: hospital data (FHIR, MEDS, OMOP, DICOMweb images) into a cohort directory.

The sources are the entries of :data:`mmdx.importers.registry.IMPORTERS`; this module only turns each entry
into a subcommand and runs it. Adding a source: write its module (its library body, an ``add_arguments``
and a ``run`` function, and an ``IMPORTERS.register(ImporterSpec(...))`` at the end), and import that
module at the end of ``mmdx/importers/registry.py``; ``mmdx import NAME`` then exists, with its ``--help``.
"""

from __future__ import annotations

import argparse

HELP = """\
Import hospital data into a cohort directory that then validates and trains like any other. Values and
notes attach to the cases of the user's case list by encounter, or by patient within the look-back window
before each case's index_time; nothing recorded after the index time is imported. Every record that cannot
be used is counted or reported with a typed reason code in OUT/import_report.json. An interrupted import
resumes when run again with the same arguments.

'mmdx import dicomweb URL COHORT' fills an existing cohort instead: it fetches the image series its cases
table references (dicomweb:<study>/<series>) from a PACS.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mmdx.importers.registry import IMPORTERS

    parser = subparsers.add_parser(
        "import",
        help="import hospital data (FHIR, MEDS, OMOP, DICOMweb) into a cohort",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for spec in IMPORTERS.specs():
        sub = sources.add_parser(
            spec.name,
            help=spec.help,
            description=spec.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        spec.add_arguments(sub)


def run(args: argparse.Namespace) -> int:
    from mmdx.importers.registry import IMPORTERS

    return IMPORTERS.get(args.source).run(args)
