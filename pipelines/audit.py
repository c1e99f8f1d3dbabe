"""``mmdx audit``: the model audit report of a run, as self-contained HTML and its JSON twin.

The workflow is :func:`mmdx.workflows.audit.audit_report`; this module parses the arguments, reads the
password and prints.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from mmdx.audit.sections import DEFAULT_MIN_REVIEW_GROUP, REPORT_SCHEMA, SECTION_TITLES, Section
from mmdx.errors import MmdxError
from mmdx.run import STORE_FILENAME
from mmdx.store import STORE_ENV

HELP = f"""\
Write the audit report of a run for a governance board, a regulator's reviewer or an external auditor:
RUN/audit/audit_report.html (one self-contained page: styles and figures inline, no network) and
audit_report.json (the same content, validated against data_schemas/{REPORT_SCHEMA}).

Sections, each computed from the run or marked "not available" with the reason: provenance (versions,
commit, config, seeds, cohort and split fingerprints, hardware); model card (intended use, inputs and units,
limitations, TRIPOD+AI items covered); cohort flow (exclusions by reason code, per split); discrimination
(AUROC, AUPRC, stratified bootstrap intervals, ROC and PR curves); operating point (sensitivity,
specificity, PPV, NPV with intervals, decision curve); calibration (reliability diagram, ECE, Brier, slope
and intercept, before and after calibration); subgroups (every subgroup of cohort.yaml and the
modality-presence pattern, gaps and equalized-odds difference, small groups flagged); robustness (the model
re-run with each modality removed, image noise, tabular missingness); explanations (faithfulness and
sanity results of 'mmdx explain'); clinician review (verdicts from the review store); comparison with a
second run (--compare: paired bootstrap difference in AUROC).

The review store is --store, else ${STORE_ENV}, else RUN/{STORE_FILENAME} when it exists. Reading verdicts
needs an auditor or admin account (--user NAME; the password is prompted for, or read with
--password-stdin), and is recorded in the store's audit trail as an export.

examples:
  mmdx audit runs/demo
  mmdx audit runs/demo --user audit1 --bootstrap 2000 --pdf
  mmdx audit runs/demo --compare runs/demo-concat --out reports/demo
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "audit",
        help="write the audit report of a run (HTML + JSON)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run directory (after mmdx train and mmdx evaluate; mmdx explain optional)")
    p.add_argument("--out", help="output folder (default RUN/audit)")
    p.add_argument(
        "--store",
        metavar="URL",
        help=f"review store URL or run directory (default ${STORE_ENV}, else RUN/{STORE_FILENAME})",
    )
    p.add_argument("--user", metavar="NAME", help="auditor or admin account of the review store")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    p.add_argument("--compare", metavar="RUN2", help="a second run on the same cohort to compare with")
    p.add_argument(
        "--cohort", help="the cohort's folder, when it moved since training (robustness, fingerprint)"
    )
    p.add_argument(
        "--external",
        metavar="SITE",
        help="the external evaluation (mmdx evaluate RUN --cohort DIR --name SITE) of the External validation "
        "section (default: the only one the run has)",
    )
    p.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="evaluation split (default test)"
    )
    p.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap and the degraded inputs (default 0)"
    )
    p.add_argument(
        "--min-group-size",
        type=int,
        default=30,
        metavar="N",
        help="smaller subgroups are flagged (default 30)",
    )
    p.add_argument(
        "--min-group-events",
        type=int,
        default=5,
        metavar="N",
        help="subgroups with fewer positives or negatives are flagged (default 5)",
    )
    p.add_argument(
        "--min-review-group",
        type=int,
        default=DEFAULT_MIN_REVIEW_GROUP,
        metavar="N",
        help=f"review subgroups with fewer verdicts are flagged (default {DEFAULT_MIN_REVIEW_GROUP})",
    )
    p.add_argument("--no-robustness", action="store_true", help="do not re-run the model on degraded inputs")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes validating the cohort and decoding images (default 2)",
    )
    p.add_argument("--threads", type=int, help="torch threads for the re-runs (default: torch's)")
    p.add_argument("--pdf", action="store_true", help="also print the report to PDF (needs Chromium)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _password(from_stdin: bool, user: str) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise MmdxError(
                "--password-stdin read an empty line; pipe the password in, e.g. printf '%s\\n' \"$PW\""
            )
        return line
    if not sys.stdin.isatty():
        raise MmdxError(
            "standard input is not a terminal, so the password cannot be prompted for; use --password-stdin"
        )
    return getpass.getpass(f"Password of {user} for the review store: ")


def _interval(value: dict) -> str:
    if value.get("estimate") is None:
        return "n/a"
    bounds = "" if value.get("low") is None else f" ({value['low']:.3f} to {value['high']:.3f})"
    return f"{value['estimate']:.3f}{bounds}"


def run(args: argparse.Namespace) -> int:
    from mmdx.audit.report import AuditOptions
    from mmdx.workflows.audit import audit_report

    options = AuditOptions(
        n_resamples=args.bootstrap,
        seed=args.seed,
        split=args.split,
        min_group_size=args.min_group_size,
        min_group_events=args.min_group_events,
        min_review_group_size=args.min_review_group,
        robustness=not args.no_robustness,
        workers=args.workers,
        threads=args.threads,
        external=args.external,
    ).checked()
    result = audit_report(
        args.run,
        args.out,
        options=options,
        store=args.store,
        user=args.user,
        password=lambda: _password(args.password_stdin, args.user),
        compare=args.compare,
        cohort_dir=args.cohort,
        pdf=args.pdf,
        progress=not args.quiet,
    )
    sections, files = result.sections, result.files
    print(f"audit report: {files.html}")
    print(f"JSON twin:    {files.json} (valid against data_schemas/{REPORT_SCHEMA})")
    if args.pdf:
        print(f"PDF:          {files.pdf}" if files.pdf else f"PDF skipped:  {files.pdf_message}")
    discrimination = sections[Section.DISCRIMINATION]
    if discrimination["status"] == "ok":
        evaluation = discrimination["by_split"][discrimination["split"]]
        print(
            f"  {discrimination['split']} n={evaluation['n']}: AUROC {_interval(evaluation['auroc'])}, "
            f"AUPRC {_interval(evaluation['auprc'])}"
        )
    point = sections[Section.OPERATING_POINT]
    if point["status"] == "ok":
        metrics = point["metrics"]
        print(
            f"  at threshold {point['threshold']:.3f}: sensitivity {_interval(metrics['sensitivity'])}, "
            f"specificity {_interval(metrics['specificity'])}"
        )
    calibration = sections[Section.CALIBRATION]
    if calibration["status"] == "ok":
        print(f"  ECE after calibration {_interval(calibration['after']['ece'])}")
    robustness = sections[Section.ROBUSTNESS]
    if robustness["status"] == "ok" and not (robustness.get("reproduction") or {}).get("reproduced", True):
        difference = robustness["reproduction"]["max_abs_logit_difference"]
        print(
            f"  warning: re-running the model did not reproduce predictions.parquet (logits differ by up to "
            f"{difference:.2g}); the cohort, the preprocessing or the model changed: run 'mmdx evaluate RUN' again"
        )
    missing = [(s, sections[s]["reason"]) for s in Section if sections[s]["status"] != "ok"]
    for section, reason in missing:
        print(f"  not available: {SECTION_TITLES[section]}: {reason}")
    return 0
