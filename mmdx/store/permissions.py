"""Who may do what in the review store. Checked by the store on every call, not by the pages that call it."""

from __future__ import annotations

from enum import StrEnum

from mmdx.store.records import AuditAction, Role


class Permission(StrEnum):
    SUBMIT_VERDICT = "submit_verdict"
    READ_VERDICTS = "read_verdicts"  # clinicians too: a case is "disputed" only in view of others' verdicts
    READ_AUDIT = "read_audit"
    EXPORT = "export"
    MANAGE_USERS = "manage_users"
    EXPLAIN_CASES = "explain_cases"  # compute a missing explanation from the dashboard (mmdx explain)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CLINICIAN: frozenset(
        {Permission.SUBMIT_VERDICT, Permission.READ_VERDICTS, Permission.EXPLAIN_CASES}
    ),
    Role.AUDITOR: frozenset({Permission.READ_VERDICTS, Permission.READ_AUDIT, Permission.EXPORT}),
    Role.ADMIN: frozenset(Permission),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[Role(role)]


#: Actions a caller may record with ``record_event`` and the permission each needs (``None``: any
#: principal issued by the store, even one whose account was deactivated since it signed in). All other
#: actions are written by the store itself, so that the trail cannot claim a verdict or sign-in that
#: did not happen.
RECORDABLE_ACTIONS: dict[AuditAction, Permission | None] = {
    AuditAction.OPEN_CASE: Permission.READ_VERDICTS,
    AuditAction.EXPORT: Permission.EXPORT,
    AuditAction.SIGN_OUT: None,
    AuditAction.SESSION_TIMEOUT: None,
}

#: Actions that may be recorded under a bare user name, i.e. when the session holding the principal is
#: already gone (the dashboard noticed an idle timeout after a restart, a sign-out from an expired page).
NAME_ONLY_ACTIONS: frozenset[AuditAction] = frozenset({AuditAction.SIGN_OUT, AuditAction.SESSION_TIMEOUT})
