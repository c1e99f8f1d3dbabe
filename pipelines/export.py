"""``mmdx export``: a run's results as DICOM objects, into a folder or a PACS over DICOMweb."""

from __future__ import annotations

import argparse

from mmdx.dicomweb.connection import add_connection_arguments

HELP = """\
Write a run's results as DICOM objects, for each explained case whose image is DICOM: the image attribution
as a Parametric Map on the source grid (float32, calibrated-logit units), a Comprehensive 3D SR (TID 1500)
with the calibrated probability, the decision at the operating threshold, the model's name, version and
bundle hash and the modality Shapley values, and on request a FRACTIONAL Segmentation (--segmentation) and a
Secondary Capture overlay of the key slice (--overlay) for viewers that show neither. Each object references
the source series, its frame of reference and instances, keeps the source study's (pseudonymous) patient and
study identifiers, adds nothing identifying, carries Content Qualification RESEARCH, and says "decision
support, not for diagnosis alone" in its series description.

--to DIR writes DICOM files (DIR/<case>/*.dcm and DIR/index.json); --dicomweb URL sends them by STOW-RS to a
DICOMweb server (e.g. https://pacs.example.org/dicom-web). Exporting the same explanation again gives the same
UIDs, so the PACS replaces the objects rather than duplicating them. Needs 'mmdx explain RUN' first.
Cases that cannot be exported (no image, a NIfTI image, a cohort changed since 'mmdx explain') are listed
with the reason. Exit status: 0 done, 1 no case could be exported, 2 bad input or the server failed.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write explained cases as DICOM objects into a folder or a PACS",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run directory (with explanations from 'mmdx explain')")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="DIR", help="write DICOM files into this folder")
    where.add_argument("--dicomweb", metavar="URL", help="store by STOW-RS at this DICOMweb service root")
    p.add_argument(
        "--cases", nargs="+", metavar="ID", help="case ids to export (default: every explained case)"
    )
    p.add_argument(
        "--segmentation", action="store_true", help="also write the map as a FRACTIONAL Segmentation"
    )
    p.add_argument("--overlay", action="store_true", help="also write a Secondary Capture of the key slice")
    p.add_argument("--cohort", help="cohort directory (default: the one the run was trained on)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_connection_arguments(p)


def run(args: argparse.Namespace) -> int:
    import logging

    from mmdx.dicomweb.connection import settings_from_arguments
    from mmdx.export.registry import ExportDestination
    from mmdx.workflows.export import export_run

    if not args.verbose:
        # highdicom logs every module it copies at INFO: a screen per case
        logging.getLogger("highdicom").setLevel(logging.WARNING)
    if args.dicomweb:
        exporter = "dicomweb"
        destination = ExportDestination(args.dicomweb, settings_from_arguments(args.dicomweb, args))
    else:
        exporter = "dir"
        destination = ExportDestination(args.to)
    result = export_run(
        args.run,
        exporter,
        destination,
        cases=args.cases,
        cohort_dir=args.cohort,
        segmentation=args.segmentation,
        overlay=args.overlay,
        progress=not args.quiet,
    )
    print(
        f"exported {len(result.exported)} case(s), {result.n_objects} object(s) to {result.destination} "
        f"in {result.seconds:.1f} s"
    )
    if result.skipped:
        print(f"skipped {len(result.skipped)} case(s):")
        for case_id, reason in result.skipped[:20]:
            print(f"  {case_id}: {reason}")
        if len(result.skipped) > 20:
            print(f"  ... and {len(result.skipped) - 20} more")
    return 0 if result.exported or not result.skipped else 1
