"""``mmdx review``: start the clinician review dashboard on a run."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mmdx.errors import MmdxError
from mmdx.store import DEFAULT_IDLE_TIMEOUT_S, Operator, ReviewStore
from pipelines.users import STORE_ENV

HELP = f"""\
Start the review dashboard (a Streamlit app) on a run directory: a worklist of the run's cases with
calibrated risk, uncertainty and review status; each case with its prediction, modality contributions,
image with window/level presets and attribution overlay, vital signs and labs, highlighted notes, and a
verdict form; the reviews, the audit trail (auditors, admins) and the accounts (admins).

The run needs its bundle and predictions (mmdx train, mmdx evaluate); explanations (mmdx explain) are shown
where they exist. Verdicts and the audit trail go to the review store: --store URL, else the
{STORE_ENV} environment variable, else the run's review.sqlite. Accounts: mmdx users add NAME --role
clinician|auditor|admin --store ...

The server listens on 127.0.0.1 (this machine only) unless --host says otherwise; serve other machines only
behind a TLS reverse proxy. Idle sessions are signed out after --idle-timeout minutes.

examples:
  mmdx review runs/demo
  mmdx review runs/demo --port 8600 --idle-timeout 10
  {STORE_ENV}=postgresql+psycopg://mmdx@db/mmdx mmdx review runs/demo
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "review",
        help="start the clinician review dashboard",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", help="run directory (with bundle/ and predictions.parquet)")
    parser.add_argument(
        "--store", metavar="URL", help=f"review store URL (default: ${STORE_ENV}, else RUN/review.sqlite)"
    )
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S / 60,
        metavar="MIN",
        help=f"minutes without activity before a session is signed out (default {DEFAULT_IDLE_TIMEOUT_S / 60:g})",
    )
    parser.add_argument("--cohort", help="the cohort's folder, when it moved since training")


def explicit_store_url(store: str | None) -> str | None:
    """``--store``, else ``$MMDX_STORE_URL`` (a directory means its ``review.sqlite``); ``None`` when neither
    is given, meaning the run's own store."""
    import os

    from pipelines.users import resolve_store_url

    return resolve_store_url(store) if store or os.environ.get(STORE_ENV) else None


def build_sample_run(
    out: str | Path,
    *,
    dims: int = 2,
    n_cases: int = 100,
    size: int = 16,
    seed: int = 5,
    extra_notes: dict[str, str] | None = None,
) -> Path:
    """A small run to try the dashboard on (its tests and benchmark use it): synthesise ``out/cohort``,
    train the tiny model of :func:`mmdx.review.testing.tiny_config` for one epoch and evaluate it into
    ``out/run``; returns the run directory. Takes well under a minute on a laptop CPU.

    ``extra_notes``: ``case_id -> text`` notes appended to the cohort before training (e.g. one holding
    markup, to check escaping). A finished run (``out/run/predictions.parquet``) is reused as it is.
    """
    from mmdx.config import config_from_dict
    from mmdx.data.synth import SynthOptions, synthesize_cohort
    from mmdx.review.testing import tiny_config
    from pipelines.evaluate import evaluate_run
    from pipelines.train import train_run

    out = Path(out)
    run_dir = out / "run"
    if (run_dir / "predictions.parquet").is_file():
        return run_dir
    cohort = out / "cohort"
    for stale in (cohort, run_dir):
        if stale.exists():
            shutil.rmtree(stale)
    synthesize_cohort(cohort, SynthOptions(n_cases=n_cases, seed=seed, dims=dims, size=size, workers=1))
    if extra_notes:
        with (cohort / "notes.jsonl").open("a", encoding="utf-8") as fh:
            for case_id, text in extra_notes.items():
                note = {"case_id": case_id, "text": text, "note_type": "test", "time": "2030-01-01T00:00:00Z"}
                fh.write(json.dumps(note) + "\n")
    config = config_from_dict(tiny_config(dims, size, name=out.name or "sample"))
    train_run(config, cohort, run_dir, progress=False)
    evaluate_run(run_dir, cohort, workers=1, progress=False)
    return run_dir


def run(args: argparse.Namespace) -> int:
    from clinical_ui.launch import dashboard_settings, dashboard_url, is_loopback, serve

    if not args.idle_timeout > 0:
        raise MmdxError(f"--idle-timeout must be a positive number of minutes, got {args.idle_timeout}")
    settings = dashboard_settings(
        args.run, explicit_store_url(args.store), args.cohort, args.idle_timeout * 60
    )
    with ReviewStore(settings.store_url) as store:
        accounts = store.list_users(Operator("mmdx-review"))
        shown_store = store.url.render_as_string(hide_password=True)
    print(f"mmdx review: run {settings.run_dir}")
    print(f"  review store {shown_store}")
    if not any(a.active for a in accounts):
        print(
            "  no active account in this store yet; add one with:\n"
            f"    mmdx users add NAME --role clinician --store {args.store or args.run}"
        )
    if not is_loopback(args.host):
        print(
            f"  warning: listening on {args.host}, reachable from other machines; serve it behind a TLS "
            "reverse proxy, never over plain HTTP"
        )
    print(f"  dashboard at {dashboard_url(args.host, args.port)} (Ctrl+C to stop)", flush=True)
    return serve(
        settings.run_dir,
        settings.store_url,
        args.port,
        args.host,
        cohort_dir=settings.cohort_dir,
        idle_timeout_s=settings.idle_timeout_s,
    )
