"""The audit workflow: open the review store (when there is one) as a signed-in auditor, build the audit
report of a run and write it (HTML, its JSON twin, optionally PDF).

The report itself is :mod:`mmdx.audit.report`; this module adds the choice of review store
(:func:`mmdx.store.resolve_store_url`) and the sign-in, so that the command line only reads a password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdx.errors import MmdxError
from mmdx.run import RunPaths
from mmdx.store import ReviewStore, resolve_store_url

if TYPE_CHECKING:
    from mmdx.audit.clinician_review import ReviewAccess
    from mmdx.audit.report import AuditFiles, AuditOptions


@dataclass(frozen=True)
class AuditResult:
    """The report document (as in ``audit_report.json``) and the files written."""

    document: dict[str, Any]
    files: AuditFiles

    @property
    def sections(self) -> dict[str, Any]:
        return self.document["sections"]


def open_review(
    url: str | None, user: str | None, password: Callable[[], str] | None = None
) -> ReviewAccess | None:
    """The review store and, when ``user`` is given, a principal signed in with ``password()``; None
    without a store. A store without an account still returns an access whose ``reason`` says why the
    clinician review section cannot be read."""
    from mmdx.audit.clinician_review import ReviewAccess

    if url is None:
        if user:
            raise MmdxError(f"--user {user} given but no review store: pass --store URL")
        return None
    store = ReviewStore(url)
    access = ReviewAccess(store)
    if not user:
        access.reason = (
            f"the review store {access.label} was found, but no account was given to read it: pass --user NAME "
            "(an auditor or admin account)"
        )
        return access
    if password is None:
        store.close()
        raise MmdxError(f"no password given for '{user}'")
    principal = store.authenticate(user, password())
    if principal is None:
        store.close()
        raise MmdxError(
            f"sign-in to the review store {access.label} failed for '{user}' (unknown user, wrong password or "
            "deactivated account); check with 'mmdx users list'"
        )
    access.principal = principal
    return access


def audit_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    options: AuditOptions | None = None,
    store: str | None = None,
    user: str | None = None,
    password: Callable[[], str] | None = None,
    compare: str | Path | None = None,
    cohort_dir: str | Path | None = None,
    pdf: bool = False,
    progress: bool = False,
) -> AuditResult:
    """Write the audit report of a run to ``out_dir`` (default ``RUN/audit``).

    ``store``: a review store URL or run directory (default ``$MMDX_STORE_URL``, else the run's own store
    when it exists); ``user``/``password``: an auditor or admin account of it. ``compare``: a second run on
    the same cohort; ``cohort_dir``: where the cohort is now, when it moved since training.
    """
    from mmdx.audit.report import AuditOptions, audit_run  # model, statistics and plotting: loaded when used

    options = (options or AuditOptions()).checked()
    RunPaths(Path(run_dir)).require("bundle", "predictions")
    review = open_review(resolve_store_url(store, run_dir, existing_only=True), user, password)
    try:
        document, files = audit_run(
            run_dir,
            out_dir,
            pdf=pdf,
            options=options,
            review=review,
            compare=compare,
            cohort_dir=cohort_dir,
            progress=progress,
        )
    finally:
        if review is not None:
            review.store.close()
    return AuditResult(document, files)
