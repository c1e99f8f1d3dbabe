"""The vocabulary of the review store and the plain records it returns.

Records are frozen dataclasses detached from any database session: the dashboard may keep them in its
session state, compare them and hand them around freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mmdx.keys import Modality


class Role(StrEnum):
    """What an account may do; the permission matrix is in :mod:`mmdx.store.permissions`."""

    CLINICIAN = "clinician"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Verdict(StrEnum):
    """A clinician's judgement of one model prediction."""

    AGREE = "agree"
    DISAGREE = "disagree"
    UNSURE = "unsure"


class ExplanationKind(StrEnum):
    """The explanation views a clinician can name as helpful (one per modality, plus modality Shapley)."""

    IMAGE = Modality.IMAGE.value
    TABULAR = Modality.TABULAR.value
    TEXT = Modality.TEXT.value
    SHAPLEY = "shapley"


class AuditAction(StrEnum):
    """What an audit event records. Actions marked *internal* are written by the store itself only."""

    SIGN_IN = "sign_in"  # internal: authenticate() succeeded
    SIGN_IN_FAILED = "sign_in_failed"  # internal: unknown user, wrong password or deactivated account
    SIGN_OUT = "sign_out"
    SESSION_TIMEOUT = "session_timeout"
    OPEN_CASE = "open_case"
    SUBMIT_VERDICT = "submit_verdict"  # internal: written in the same transaction as the verdict
    EXPORT = "export"
    VIEW_AUDIT = "view_audit"  # internal: audit_events() was called
    PERMISSION_DENIED = "permission_denied"  # internal
    USER_ADDED = "user_added"  # internal
    USER_DEACTIVATED = "user_deactivated"  # internal
    USER_ACTIVATED = "user_activated"  # internal
    PASSWORD_CHANGED = "password_changed"  # internal


class ReviewStatus(StrEnum):
    """The review state of one case in one run, as seen by one principal.

    Only each user's *latest* verdict on the case counts (earlier ones were superseded):

    * ``unreviewed`` — nobody has a verdict on the case;
    * ``disputed`` — some latest verdict is ``disagree``, or the latest verdicts of different users are not
      all the same value (e.g. one ``agree`` and one ``unsure``); this wins over the two states below;
    * ``reviewed_by_me`` — the principal has a verdict and the case is not disputed;
    * ``reviewed_by_others`` — others have verdicts, the principal has none, and the case is not disputed.
    """

    UNREVIEWED = "unreviewed"
    REVIEWED_BY_ME = "reviewed_by_me"
    REVIEWED_BY_OTHERS = "reviewed_by_others"
    DISPUTED = "disputed"


@dataclass(frozen=True)
class Principal:
    """A signed-in user. Obtain one only from :meth:`ReviewStore.authenticate`.

    ``seal`` binds the name and role to the store that issued the principal; a principal built by hand
    (or altered with :func:`dataclasses.replace`) is refused by every store method.
    """

    name: str
    role: Role
    seal: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class Operator:
    """Someone with direct access to the store's database (the ``mmdx users`` command), not a signed-in user.

    An operator may manage accounts, and nothing else: it is how the first admin account comes to exist.
    ``name`` identifies the operator in the audit trail as ``operator:<name>``.
    """

    name: str

    @property
    def audit_name(self) -> str:
        return f"operator:{self.name}"


@dataclass(frozen=True)
class UserInfo:
    """An account as listed to admins; the password hash never leaves the store."""

    name: str
    role: Role
    active: bool
    created_at: datetime  # timezone-aware, UTC


@dataclass(frozen=True)
class VerdictRecord:
    """One stored verdict. Verdicts are never changed: a change of mind is a new record whose
    ``supersedes`` is the id of the same user's previous verdict on the same case of the same run."""

    id: int
    run_id: str
    case_id: str
    user: str
    created_at: datetime  # timezone-aware, UTC
    verdict: Verdict
    diagnosis: str
    confidence: int  # 1 (guess) .. 5 (certain)
    comment: str
    helpful_explanations: tuple[ExplanationKind, ...]
    model_version: str
    explanation_version: str
    supersedes: int | None


@dataclass(frozen=True)
class AuditEvent:
    """One audit trail entry; ``detail`` is a read-only JSON object."""

    id: int
    time: datetime  # timezone-aware, UTC
    user: str
    action: AuditAction
    run_id: str | None
    case_id: str | None
    detail: Mapping[str, Any] = field(hash=False)
