"""How ``mmdx review`` hands the run, the store and the timeout to the Streamlit app: environment variables.

Environment variables rather than command-line arguments, so that a PostgreSQL password in the store URL
never shows in the process list. The store travels in ``MMDX_STORE_URL``, the variable every command reads
(:func:`mmdx.store.resolve_store_url`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmdx.errors import MmdxError
from mmdx.store import DEFAULT_IDLE_TIMEOUT_S, STORE_ENV, resolve_store_url

RUN_ENV = "MMDX_REVIEW_RUN"
COHORT_ENV = "MMDX_REVIEW_COHORT"
IDLE_TIMEOUT_ENV = "MMDX_REVIEW_IDLE_TIMEOUT_S"


@dataclass(frozen=True)
class DashboardSettings:
    run_dir: str
    store_url: str
    cohort_dir: str | None
    idle_timeout_s: float

    def environment(self) -> dict[str, str]:
        """The variables that carry these settings to the app process."""
        env = {
            RUN_ENV: self.run_dir,
            STORE_ENV: self.store_url,
            IDLE_TIMEOUT_ENV: repr(float(self.idle_timeout_s)),
        }
        if self.cohort_dir:
            env[COHORT_ENV] = self.cohort_dir
        return env


def settings_from_environment(environ: Mapping[str, str] | None = None) -> DashboardSettings:
    """Read the settings; raises :class:`MmdxError` naming the variable that is missing or invalid."""
    environ = os.environ if environ is None else environ
    run_dir = environ.get(RUN_ENV, "").strip()
    if not run_dir:
        raise MmdxError(
            f"{RUN_ENV} is not set: start the dashboard with 'mmdx review RUN', which sets it, or set it to a "
            "run directory"
        )
    store_url = resolve_store_url(None, run_dir, environ=environ)
    cohort = environ.get(COHORT_ENV, "").strip() or None
    raw_timeout = environ.get(IDLE_TIMEOUT_ENV, "").strip()
    try:
        timeout = float(raw_timeout) if raw_timeout else DEFAULT_IDLE_TIMEOUT_S
    except ValueError:
        raise MmdxError(f"{IDLE_TIMEOUT_ENV}={raw_timeout!r} is not a number of seconds") from None
    if not timeout > 0:
        raise MmdxError(f"{IDLE_TIMEOUT_ENV} must be a positive number of seconds, got {raw_timeout}")
    return DashboardSettings(str(Path(run_dir).expanduser().resolve()), store_url, cohort, timeout)
