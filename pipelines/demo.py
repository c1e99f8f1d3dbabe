"""``mmdx demo``: the whole workflow on the embedded defaults, end to end, on one laptop.

synthesise a cohort with planted defects -> validate it -> train the demo model -> evaluate -> explain the
test cases -> write the audit report -> start the review dashboard with a demo account.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from pipelines.cli import main as mmdx

HELP = """\
Run the whole mmdx workflow on a synthetic cohort: synth (600 2D cases with planted defects) -> validate
-> train (configs/demo.yaml) -> evaluate -> explain (test split) -> audit -> review dashboard. Outputs go to
cohorts/demo and runs/demo (replaced on each run). --no-review stops before starting the dashboard.
Ctrl+C stops the demo at any step (it is how the dashboard is closed) and exits cleanly.
"""

REPO = Path(__file__).resolve().parents[1]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the whole workflow on a synthetic cohort", description=HELP)
    p.add_argument(
        "--cohort", default="cohorts/demo", help="where to write the cohort (default cohorts/demo)"
    )
    p.add_argument("--run", default="runs/demo", help="where to write the run (default runs/demo)")
    p.add_argument("--cases", type=int, default=600)
    p.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    p.add_argument("--explain-limit", type=int, default=60, help="test cases to explain (default 60)")
    p.add_argument("--no-review", action="store_true", help="do not start the dashboard at the end")
    p.add_argument("--port", type=int, default=8501)


def _step(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def _has(command: str) -> bool:
    return importlib.util.find_spec(f"pipelines.{command}") is not None


#: the exit status of a step stopped with Ctrl+C (the command line's, 128 + SIGINT)
STOPPED = 130


def run(args: argparse.Namespace) -> int:
    """The demo; Ctrl+C stops it cleanly at any step (exit status 0, so that ``make demo`` stays quiet:
    stopping the dashboard with Ctrl+C is how the demo ends)."""
    try:
        rc = _run(args)
    except KeyboardInterrupt:
        rc = STOPPED
    if rc == STOPPED:
        # stopping: a Ctrl+C still pending (or pressed again) while the interpreter shuts down the loader
        # workers must not turn this clean stop into an interrupted exit
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"\nmmdx demo: stopped (Ctrl+C); what ran so far is in {Path(args.run).resolve()}", flush=True)
        _exit_stopped()
    return rc


def _exit_stopped() -> None:
    """End the process with status 0 once a Ctrl+C stop is reported. A Ctrl+C that landed while a step was
    importing its libraries has been seen to end the interpreter's shutdown by SIGINT although the interrupt
    was handled (status 130, "Error 130" from make); so the shutdown is skipped. What ran is on disk, the
    steps' process pools are shut down as their steps unwind, and data-loader workers end with their parent.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _run(args: argparse.Namespace) -> int:
    cohort, out = Path(args.cohort), Path(args.run)
    for path in (cohort, out):
        if path.exists():
            shutil.rmtree(path)
    started = time.perf_counter()

    _step(f"1. synthesise {args.cases} cases with planted defects -> {cohort}")
    if rc := mmdx(
        ["synth", str(cohort), "--cases", str(args.cases), "--dims", "2", "--seed", "0", "--defects"]
    ):
        return rc
    _step("2. validate: every defect gets its own reason code")
    if rc := mmdx(
        ["validate", str(cohort), "--report", str(cohort.parent / "demo_validation.json"), "--show", "30"]
    ):
        return rc
    t = _step("3. train the demo model (gated-attention fusion of image, vitals/labs and notes)")
    if rc := mmdx(["train", "--config", args.config, "--cohort", str(cohort), "--out", str(out)]):
        return rc
    print(f"training took {time.perf_counter() - t:.0f} s")
    _step("4. evaluate on every split")
    if rc := mmdx(["evaluate", str(out)]):
        return rc
    if _has("explain"):
        _step(
            f"5. explain {args.explain_limit} test cases (modality Shapley values, attributions of values, "
            "notes and image; the image method chosen on validation cases)"
        )
        if rc := mmdx(["explain", str(out), "--split", "test", "--limit", str(args.explain_limit)]):
            return rc
    if _has("audit"):
        _step("6. audit report")
        if rc := mmdx(["audit", str(out)]):
            return rc
    print(f"\nthe demo ran in {time.perf_counter() - started:.0f} s; the run lives in {out.resolve()}")
    if args.no_review or not _has("review"):
        return 0
    _step("7. clinician review dashboard")
    from mmdx.review.accounts import ensure_demo_account
    from mmdx.store import default_store_url

    store = default_store_url(out)
    name, password = ensure_demo_account(store)
    print(f"sign in as '{name}' with password '{password}' (a local demo account)")
    return mmdx(["review", str(out), "--store", store, "--port", str(args.port)])
