"""Who may read what through the dashboard's library.

The review store checks roles on every call it serves (verdicts, audit trail, accounts). Case data (the
predictions, explanations, images, values and notes of a run) is read from the run directory, not from the
store, so the functions of :mod:`mmdx.review` that return case data first call
:func:`authorize_case_reading`: it refuses anything but a :class:`~mmdx.store.Principal` of a role in
:data:`CASE_READER_ROLES`, then has the store verify the principal (issued by this store's
``authenticate``, account still active, role unchanged). A refusal raises
:class:`~mmdx.store.PermissionDenied`, and the store records a ``permission_denied`` event.
"""

from __future__ import annotations

from mmdx.store import Permission, PermissionDenied, Principal, ReviewStore, Role
from mmdx.store.permissions import allows

#: Roles allowed to read case data (predictions, explanations, images, vital signs, notes).
CASE_READER_ROLES: frozenset[Role] = frozenset({Role.CLINICIAN, Role.AUDITOR, Role.ADMIN})


def authorize_case_reading(store: ReviewStore, principal: object, run_id: str) -> Principal:
    """Return ``principal`` if it may read the cases of ``run_id``; raise :class:`PermissionDenied` if not.

    The store's own check (``review_status`` with no case, which needs the ``read_verdicts`` permission held
    by every case reader) verifies the principal's seal, that the account is active and that its role has not
    changed since sign-in; a refusal there is recorded in the audit trail.
    """
    if not isinstance(principal, Principal):
        raise PermissionDenied(
            f"permission denied: reading cases needs a signed-in principal, got {type(principal).__name__}; "
            "sign in first"
        )
    if principal.role not in CASE_READER_ROLES:
        raise PermissionDenied(
            f"permission denied: {principal.name} may not read cases: the role '{principal.role}' does not "
            f"allow it (only {', '.join(sorted(r.value for r in CASE_READER_ROLES))} may)"
        )
    store.review_status(principal, run_id, [])
    return principal


def may(principal: Principal | None, permission: Permission) -> bool:
    """Whether the principal's role holds ``permission`` (to decide which pages to offer; the store still
    checks every call)."""
    return principal is not None and allows(principal.role, permission)
