"""``mmdx import dicomweb URL COHORT``: fetch the image series a cohort references from a PACS.

This module holds the arguments and the body of the ``dicomweb`` source of ``mmdx import``
(:func:`add_arguments`, :func:`run`); ``python -m pipelines.import_dicomweb URL COHORT`` runs it alone.
"""

from __future__ import annotations

import argparse
import sys

from mmdx.dicomweb.connection import add_connection_arguments

HELP = """\
Fetch the image series a cohort references into its images/ folder. A cases-table image cell
'dicomweb:<StudyInstanceUID>/<SeriesInstanceUID>' names a series on the DICOMweb server at URL: its instances
are listed with QIDO-RS and retrieved with WADO-RS (as stored, no transcoding) into
COHORT/images/dicomweb/<SeriesInstanceUID>/, at most --parallel requests at a time. The image cell then points
at that folder (at the file, for a one-instance series) and the reference moves to the column image_source. The import resumes where it stopped:
complete series are not fetched again, interrupted ones only for their missing instances. A malformed
reference, a series the server lacks, a failed retrieval or an unreachable server is reported per case with a
typed reason code (also in COHORT/dicomweb_import.json); such a case keeps its reference for the next run.
Exit status: 0 every referenced series is present, 1 some case did not get its image, 2 bad arguments.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="DICOMweb service root, e.g. https://pacs.example.org/dicom-web")
    parser.add_argument("cohort", help="cohort directory whose image column holds dicomweb: references")
    parser.add_argument(
        "--parallel", type=int, default=4, metavar="N", help="requests in flight at most (default 4)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mmdx.dicomweb.connection import settings_from_arguments
    from mmdx.importers.dicomweb import REPORT, import_dicomweb

    settings = settings_from_arguments(args.url, args)
    result = import_dicomweb(settings, args.cohort, parallel=args.parallel, progress=not args.quiet)
    print(
        f"{result.server}: fetched {result.series_fetched} series ({result.instances_fetched} instances), "
        f"{result.series_already_present} already present; {result.cases_rewritten} case(s) now point at "
        f"their local images ({result.seconds:.1f} s)"
    )
    if result.issues:
        print(f"{len(result.issues)} case(s) without their image (details in {args.cohort}/{REPORT}):")
        for issue in result.issues[:20]:
            print(f"  {issue.code}: {issue.message} (row {issue.row})")
        if len(result.issues) > 20:
            print(f"  ... and {len(result.issues) - 20} more")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    import logging

    from mmdx.errors import MmdxError

    parser = argparse.ArgumentParser(
        prog="mmdx import dicomweb", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except MmdxError as exc:
        print(f"mmdx import dicomweb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
