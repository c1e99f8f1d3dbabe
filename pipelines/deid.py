"""``mmdx deid``: write a de-identified copy of a cohort."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from mmdx.deid.cohort import REPORT_FILE, DeidOptions, deidentify_cohort
from mmdx.deid.dicom import DicomOptions, parse_private_allowlist
from mmdx.deid.key import load_or_create_key

HELP = """\
Write a de-identified copy of a cohort. DICOM files follow the Basic Application Level Confidentiality
Profile of DICOM PS3.15 Annex E (table E.1-1, applied into nested sequences; private tags removed unless
allowed with --keep-private; UIDs remapped to 2.25.<keyed hash>, the same in every file and run, so a series
stays a series); dates and times move by one offset per patient (-365 to -1 days), so intervals survive;
files whose Burned In Annotation is YES, or absent for US, SC or OT, are quarantined with a reason code.
Patient, case and encounter IDs become keyed pseudonyms (P-/C-/E- and 10 hex digits) everywhere; only the
columns and fields the cohort format knows are written (the cases table's IDs, label, split, image,
demographics, declared subgroups, index_time, encounter_id; the observations' case_id, code, value, unit,
time, encounter_id; the notes' case_id, text, note_type, time, encounter_id): everything else is dropped
and named in the report (keep a cases-table column anyway with --keep-column). Notes are scrubbed of names
(including those in the patient's DICOM headers and untitled ones next to a relationship or role word),
dates, phone numbers, e-mails, record numbers and addresses, replaced by [NAME], [DATE], [PHONE], [EMAIL],
[ID], [ADDRESS]. A report of what was changed, quarantined and why is written to OUT_COHORT/deid_report.json.

The key file is created (mode 0600) when it does not exist. Keep it secret and outside the output: the same
key gives the same pseudonyms, UIDs and date shifts next time (new data for the same patients links up); a
new key gives unlinkable output. The key never goes into OUT_COHORT.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "deid",
        help="write a de-identified copy of a cohort",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("in_cohort", help="the identified cohort")
    p.add_argument("out_cohort", help="output folder (must not exist or be empty)")
    p.add_argument(
        "--key-file", required=True, help="secret key file; created when missing; must lie outside OUT_COHORT"
    )
    p.add_argument(
        "--keep-private",
        action="append",
        default=[],
        metavar="GGGG,CREATOR,EE",
        help="keep one private attribute known to be safe (repeatable), e.g. 0019,GEMS_ACQU_01,10",
    )
    p.add_argument(
        "--keep-column",
        action="append",
        default=[],
        metavar="NAME",
        help="keep this cases-table column outside the cohort format (repeatable); scrubbed as free text",
    )
    p.add_argument(
        "--no-date-shift",
        action="store_true",
        help="empty or remove DICOM dates as the Basic Profile says instead of shifting them",
    )
    p.add_argument(
        "--quarantine-dir",
        help="copy quarantined original images here for manual review (identified data: protect it)",
    )
    p.add_argument("--workers", type=int, default=2, help="processes de-identifying images (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out_cohort)
    key, created = load_or_create_key(args.key_file, forbidden=(out,))
    if created:
        print(
            f"created a new de-identification key in {args.key_file} (mode 0600). Keep it secret and outside "
            "the data; reuse it to get the same pseudonyms for new data of the same patients."
        )
    options = DeidOptions(
        dicom=DicomOptions(
            private_allowlist=parse_private_allowlist(args.keep_private), shift_dates=not args.no_date_shift
        ),
        keep_columns=tuple(args.keep_column),
        workers=max(1, args.workers),
        quarantine_dir=Path(args.quarantine_dir) if args.quarantine_dir else None,
    )
    start = time.perf_counter()
    with tqdm(
        total=None, desc="images", unit="image", leave=False, disable=True if args.quiet else None
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = deidentify_cohort(args.in_cohort, out, key, options, progress=progress)
    elapsed = time.perf_counter() - start
    print(f"de-identified {args.in_cohort} -> {out} in {elapsed:.1f} s (key {key.fingerprint()})")
    for line in report.summary_lines():
        print(f"  {line}")
    print(f"report: {out / REPORT_FILE}")
    return 0
