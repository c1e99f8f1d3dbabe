"""The review store's tables (SQLAlchemy ORM), identical on SQLite and PostgreSQL.

``verdicts`` and ``audit_events`` are append-only twice over: the store's API has no update or delete,
and database triggers refuse ``UPDATE`` and ``DELETE`` on them from any client. A change of mind is a new
verdict whose ``supersedes`` names the same user's previous verdict on the same (run, case); two unique
indexes keep each such chain linear even when two sessions of one user submit at the same moment.

``SCHEMA_VERSION`` is stored in ``mmdx_meta``; bump it with any change to these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from mmdx.store.records import AuditAction, Role, Verdict

SCHEMA_VERSION = 1
SCHEMA_VERSION_KEY = "schema_version"

NAME_LENGTH = 64
ID_LENGTH = 200  # run ids, case ids, versions
DIAGNOSIS_LENGTH = 500
COMMENT_LENGTH = 5000


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC and get
    their ``tzinfo`` back when read. Naive datetimes are refused on the way in: their meaning is a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where a timezone-aware one is needed")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type, name: str) -> Enum:
    # VARCHAR + CHECK rather than a native PostgreSQL ENUM: no CREATE TYPE to race on at first open, and
    # adding a member is a CHECK change rather than an ALTER TYPE.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    pass


class MetaRow(Base):
    __tablename__ = "mmdx_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    password_hash: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(default=True)


class VerdictRow(Base):
    __tablename__ = "verdicts"
    __table_args__ = (
        CheckConstraint("confidence BETWEEN 1 AND 5", name="ck_verdicts_confidence"),
        Index("ix_verdicts_run_case", "run_id", "case_id"),
        # At most one first verdict per user and (run, case) ...
        Index(
            "ux_verdicts_first",
            "run_id",
            "case_id",
            "user_name",
            unique=True,
            sqlite_where=text("supersedes IS NULL"),
            postgresql_where=text("supersedes IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    case_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    user_name: Mapped[str] = mapped_column(String(NAME_LENGTH), ForeignKey("users.name"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict, "verdict"))
    diagnosis: Mapped[str] = mapped_column(Text)
    confidence: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text)
    helpful_explanations: Mapped[list[str]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(ID_LENGTH))
    explanation_version: Mapped[str] = mapped_column(String(ID_LENGTH))
    # ... and each verdict superseded at most once: together, every chain is a single line.
    supersedes: Mapped[int | None] = mapped_column(ForeignKey("verdicts.id"), unique=True)


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_time", "time"),
        Index("ix_audit_user", "user_name"),
        Index("ix_audit_case", "case_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    # Free text, not a foreign key: failed sign-ins and operators have no account row.
    user_name: Mapped[str] = mapped_column(String(NAME_LENGTH + 20))
    action: Mapped[AuditAction] = mapped_column(_enum(AuditAction, "audit_action"))
    run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    case_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


APPEND_ONLY_TABLES = (VerdictRow.__table__, AuditEventRow.__table__)

_PG_APPEND_ONLY_FUNCTION = DDL(
    "CREATE OR REPLACE FUNCTION mmdx_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'table %% of the mmdx review store is append-only', TG_TABLE_NAME; END $$"
)

for _table in APPEND_ONLY_TABLES:
    _name = _table.name
    for _op in ("UPDATE", "DELETE"):
        event.listen(
            _table,
            "after_create",
            DDL(
                f"CREATE TRIGGER {_name}_no_{_op.lower()} BEFORE {_op} ON {_name} "
                f"BEGIN SELECT RAISE(ABORT, 'table {_name} of the mmdx review store is append-only'); END"
            ).execute_if(dialect="sqlite"),
        )
    event.listen(_table, "after_create", _PG_APPEND_ONLY_FUNCTION.execute_if(dialect="postgresql"))
    event.listen(
        _table,
        "after_create",
        DDL(
            f"CREATE TRIGGER {_name}_append_only BEFORE UPDATE OR DELETE ON {_name} "
            "FOR EACH ROW EXECUTE FUNCTION mmdx_refuse_change()"
        ).execute_if(dialect="postgresql"),
    )
    event.listen(
        _table,
        "after_create",
        DDL(
            f"CREATE TRIGGER {_name}_no_truncate BEFORE TRUNCATE ON {_name} "
            "FOR EACH STATEMENT EXECUTE FUNCTION mmdx_refuse_change()"
        ).execute_if(dialect="postgresql"),
    )
