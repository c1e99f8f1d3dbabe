"""``mmdx review``: start the clinician review dashboard on a run."""

from __future__ import annotations

import argparse

from mmdx.errors import MmdxError
from mmdx.store import DEFAULT_IDLE_TIMEOUT_S, STORE_ENV, Operator, ReviewStore, resolve_store_url

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


def run(args: argparse.Namespace) -> int:
    from clinical_ui.launch import dashboard_settings, dashboard_url, is_loopback, serve

    if not args.idle_timeout > 0:
        raise MmdxError(f"--idle-timeout must be a positive number of minutes, got {args.idle_timeout}")
    settings = dashboard_settings(
        args.run, resolve_store_url(args.store, args.run), args.cohort, args.idle_timeout * 60
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
