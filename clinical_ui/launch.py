"""Starting the dashboard's Streamlit server: locked-down defaults, settings through the environment.

The server listens on 127.0.0.1 unless told otherwise, runs headless, sends no usage statistics, watches
no files, shows no tracebacks to the browser (they could carry case data; the server log has them), and
turns off the data export of tables, since every export of case data must go through the audited export
of the audit page.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from clinical_ui.settings import DashboardSettings
from mmdx.errors import MmdxError
from mmdx.run import RunPaths
from mmdx.store import DEFAULT_IDLE_TIMEOUT_S, default_store_url

APP = Path(__file__).resolve().parent / "app.py"
DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"


def dashboard_url(host: str, port: int) -> str:
    """The address to open in a browser (IPv6 hosts in brackets; 0.0.0.0 shown as 127.0.0.1)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("localhost" if host == "::" else host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def streamlit_command(host: str, port: int) -> list[str]:
    """The command line that runs the app with the dashboard's server options."""
    if not 1 <= int(port) <= 65535:
        raise MmdxError(f"port must be between 1 and 65535, got {port}")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(int(port)),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--client.disableDataExport",
        "true",
    ]


def dashboard_settings(
    run_dir: str | Path,
    store_url: str | None = None,
    cohort_dir: str | Path | None = None,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
) -> DashboardSettings:
    """Check the run (it needs its bundle and predictions) and gather the settings of one dashboard."""
    run = RunPaths(Path(run_dir).expanduser().resolve())
    run.require("bundle", "predictions")
    if not idle_timeout_s > 0:
        raise MmdxError(f"the idle timeout must be positive, got {idle_timeout_s!r} seconds")
    if cohort_dir is not None and not Path(cohort_dir).is_dir():
        raise MmdxError(f"cohort directory not found: {cohort_dir}")
    return DashboardSettings(
        run_dir=str(run.root),
        store_url=store_url or default_store_url(run.root),
        cohort_dir=None if cohort_dir is None else str(Path(cohort_dir).expanduser().resolve()),
        idle_timeout_s=float(idle_timeout_s),
    )


def start_server(
    run_dir: str | Path,
    store_url: str | None = None,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    *,
    cohort_dir: str | Path | None = None,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    home: str | Path | None = None,
    **popen: object,
) -> subprocess.Popen:
    """Start the dashboard server in the background and return its process (the caller stops it).

    ``home``: a folder to use as ``HOME`` for the server (Streamlit writes a machine id there); ``popen``
    is passed to :class:`subprocess.Popen` (e.g. ``stdout``).
    """
    settings = dashboard_settings(run_dir, store_url, cohort_dir, idle_timeout_s)
    env = {**os.environ, **settings.environment()}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.Popen(streamlit_command(host, port), env=env, **popen)  # type: ignore[call-overload]


def wait_until_ready(url: str, process: subprocess.Popen | None = None, timeout_s: float = 60.0) -> None:
    """Wait for the server's health endpoint to answer; raises :class:`MmdxError` on timeout or exit."""
    deadline = time.monotonic() + timeout_s
    health = f"{url}/_stcore/health"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise MmdxError(f"the dashboard server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(health, timeout=2) as response:  # noqa: S310 - a local URL we built
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise MmdxError(f"the dashboard did not answer at {health} within {timeout_s:.0f} s")


def serve(
    run_dir: str | Path,
    store_url: str | None = None,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    *,
    cohort_dir: str | Path | None = None,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
) -> int:
    """Run the dashboard in the foreground until interrupted; returns the server's exit code.

    Args:
        run_dir: the run to review (needs ``bundle/`` and ``predictions.parquet``).
        store_url: the review store (default: the run's ``review.sqlite``).
        port, host: where to listen (default 127.0.0.1: only this machine can connect).
        cohort_dir: the cohort's folder when it moved since training.
        idle_timeout_s: inactivity after which a session is signed out.
    """
    process = start_server(
        run_dir, store_url, port, host, cohort_dir=cohort_dir, idle_timeout_s=idle_timeout_s
    )
    # a SIGTERM to this process (a service manager, `timeout`) stops the server too instead of orphaning it
    forwarding = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate()) if forwarding else None
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
    finally:
        if forwarding:
            signal.signal(signal.SIGTERM, previous)
