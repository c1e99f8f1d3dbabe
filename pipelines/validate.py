"""``mmdx validate``: account for every case, file and row of a cohort."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from mmdx.data.issues import describe
from mmdx.data.validation import ValidationReport

HELP = """\
Check a cohort directory against the mmdx cohort contract. Every case ends accepted, accepted with warnings
(something was dropped, e.g. an unreadable image or an observation in an unknown unit) or rejected (e.g. a
duplicate case_id), each problem with a typed reason code. DICOM folders are grouped by SeriesInstanceUID
and slices sorted along the slice normal; images are decoded to catch truncated files and unsupported
transfer syntaxes; image headers are judged before pixel data is read (wrong dimensionality, too many
voxels, less data than declared). One bad file never stops the run.

With --config CONFIG (or --bundle BUNDLE), every image is also checked against the image preprocessing
plan that config would fit to the cohort's training images (or the bundle's own plan), where it can still
be fixed: an image covering less than half of the model grid (IMAGE_FOV_MISMATCH) or cropped by more than
half (IMAGE_FOV_CROPPED), a 2D image in a 3D cohort (IMAGE_DIMS_DROPPED), a volume in a 2D cohort
(IMAGE_CENTRE_SLICE), a normalisation that does not fit the modality (IMAGE_INTENSITY_MISMATCH), a modality
the model never saw (IMAGE_MODALITY_UNSEEN). A config that cannot fit the cohort at all fails with one line
saying what to change. The ground truth of a synthetic cohort (ground_truth/) is checked against its
JSON Schema.

Exit status: 0 when the cohort is usable, 1 when no case is usable, 2 when the cohort itself cannot be read
(no cohort.yaml or cases table, or a table header naming a column twice) or the config cannot be planned on
it.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="validate a cohort directory",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("cohort", nargs="?", help="cohort directory (default: data.cohort of --config)")
    p.add_argument("--config", help="also check every image against the preprocessing plan of this config")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value",
    )
    p.add_argument("--bundle", help="also check every image against this trained bundle's own plan")
    p.add_argument("--report", metavar="FILE.json", help="write the full per-case report as JSON")
    p.add_argument("--workers", type=int, default=2, help="processes decoding images (default 2)")
    p.add_argument("--no-images", action="store_true", help="skip decoding images (faster, less thorough)")
    p.add_argument("--show", type=int, default=20, help="list at most this many problem cases (default 20)")


def print_report(report: ValidationReport, console: Console, show: int = 20) -> None:
    s = report.summary
    console.print(
        f"[bold]{report.cohort['name']}[/bold] ({report.cohort['path']}): {s['rows']} case rows -> "
        f"[green]{s['accepted']} accepted[/green], [yellow]{s['warning']} with warnings[/yellow], "
        f"[red]{s['rejected']} rejected[/red]; {s['usable_cases']} usable"
    )
    if s["issues_by_code"]:
        table = Table(title="issues by reason code", show_lines=False)
        table.add_column("code", style="bold")
        table.add_column("count", justify="right")
        table.add_column("meaning")
        for code, count in sorted(s["issues_by_code"].items(), key=lambda kv: -kv[1]):
            table.add_row(code, str(count), describe(code))
        console.print(table)
    problems = [c for c in report.cases if c.issues]
    if problems:
        table = Table(title=f"problem cases (first {min(show, len(problems))} of {len(problems)})")
        for col in ("case", "status", "code", "file", "message"):
            table.add_column(col, overflow="fold")
        for case in problems[:show]:
            for issue in case.issues:
                table.add_row(case.case_id, case.status, str(issue.code), issue.file or "", issue.message)
        console.print(table)
    if report.files:
        table = Table(title="rows and lines not attached to a usable case")
        for col in ("code", "file", "row", "message"):
            table.add_column(col, overflow="fold")
        for issue in report.files[:show]:
            table.add_row(str(issue.code), issue.file or "", str(issue.row or ""), issue.message)
        console.print(table)
    splits = ", ".join(f"{k} {v['cases']} ({v['positive']} positive)" for k, v in s["splits"].items())
    console.print(
        f"splits: {splits}"
        + (f"; {s['splits_assigned_by_mmdx']} assigned by mmdx" if s["splits_assigned_by_mmdx"] else "")
    )
    console.print(
        "modalities present: "
        + ", ".join(f"{k} {v}" for k, v in s["modality_presence"].items())
        + f"; observation rows used {s['observation_rows_used']}/{s['observation_rows']}"
    )
    timing = s.get("index_time") or {}
    if timing.get("cases_with_index_time"):
        excluded = "; ".join(
            f"{what}: " + ", ".join(f"{n} {code}" for code, n in counts.items())
            for what, counts in timing["excluded"].items()
            if counts
        )
        console.print(
            f"index time: {timing['cases_with_index_time']} cases; excluded " + (excluded or "nothing")
        )


def run(args: argparse.Namespace) -> int:
    from mmdx.workflows.plan import validate_against_plan

    start = time.perf_counter()
    with tqdm(
        total=None,
        desc="decoding images",
        unit="image",
        leave=False,
        disable=True if args.no_images else None,
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        result = validate_against_plan(
            args.cohort,
            args.config,
            args.overrides,
            args.bundle,
            check_images=not args.no_images,
            workers=args.workers,
            progress=progress,
        )
    report = result.cohort.report
    console = Console(file=sys.stdout, width=140)
    print_report(report, console, args.show)
    if result.planned is not None:
        from mmdx.data.plan import describe_warnings

        planned = result.planned
        console.print(f"image plan: {planned.plan.describe()}{describe_warnings(planned)}", highlight=False)
        for note in planned.plan.notes:
            console.print(f"  note: {note}", highlight=False)
    if args.report:
        report.write(args.report)
        console.print(f"report written to {args.report}")
    console.print(f"validated in {time.perf_counter() - start:.1f} s")
    return 0 if report.usable else 1
