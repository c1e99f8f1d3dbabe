"""Errors of the review store: each says what was received, what was expected and how to fix it."""

from __future__ import annotations

from mmdx.errors import MmdxError


class StoreError(MmdxError):
    """The review store cannot be opened or used (bad URL, unreachable server, locked database)."""


class SchemaVersionError(StoreError):
    """The store was written by a different mmdx store schema version than this code understands."""


class AccountError(MmdxError):
    """An account operation with bad input: unknown or duplicate user, weak password, invalid name."""


class SignInLocked(MmdxError):
    """Too many failed sign-ins for the account or from the client: sign-in is refused, without checking the
    password, until ``until`` (``retry_after_s`` seconds from when it was raised); the refusal was recorded."""

    def __init__(self, message: str, retry_after_s: float, until: object = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.until = until


class PermissionDenied(MmdxError):
    """The principal's role does not allow the operation; a ``permission_denied`` event was recorded."""
