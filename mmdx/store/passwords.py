"""Salted password hashes with bcrypt.

bcrypt reads at most 72 bytes of its input and the ``bcrypt`` package refuses longer input. So that every
character of a long passphrase counts, the password is first reduced to a fixed 44-byte string:

    stored = bcrypt(base64(sha256(utf8(password))), salt, cost)

The base64 step matters: a raw SHA-256 digest may contain NUL bytes, which would end bcrypt's input early.
``stored`` is the standard ``$2b$<cost>$<salt><hash>`` string, so each hash carries its own random salt and
cost; two accounts with the same password get different hashes.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt

from mmdx.store.errors import AccountError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # characters; longer is not a password anyone types, and costs hashing time
DEFAULT_BCRYPT_ROUNDS = 12  # log2 of bcrypt's work factor: about 0.2 s per hash on one laptop core
MIN_BCRYPT_ROUNDS = 4  # bcrypt's own lower bound; only tests should go this low
MAX_BCRYPT_ROUNDS = 20


def check_password_policy(password: object) -> str:
    """Return ``password`` if it is acceptable; otherwise raise :class:`AccountError` saying why."""
    if not isinstance(password, str):
        raise AccountError(f"a password must be a string, got {type(password).__name__}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"password too short: got {len(password)} characters, need at least {MIN_PASSWORD_LENGTH}; "
            "choose a longer passphrase"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(
            f"password too long: got {len(password)} characters, at most {MAX_PASSWORD_LENGTH} are accepted"
        )
    if not password.strip():
        raise AccountError("password is only whitespace; choose a passphrase with visible characters")
    return password


def check_rounds(rounds: int) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, int):
        raise AccountError(f"bcrypt rounds must be an integer, got {rounds!r}")
    if not MIN_BCRYPT_ROUNDS <= rounds <= MAX_BCRYPT_ROUNDS:
        raise AccountError(
            f"bcrypt rounds must be between {MIN_BCRYPT_ROUNDS} and {MAX_BCRYPT_ROUNDS}, got {rounds} "
            f"(the default is {DEFAULT_BCRYPT_ROUNDS})"
        )
    return rounds


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int = DEFAULT_BCRYPT_ROUNDS) -> str:
    """Hash a password that passed :func:`check_password_policy`; a fresh random salt is drawn each call."""
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(check_rounds(rounds))).decode("ascii")


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash. Takes the hash's full cost whatever the answer."""
    if not isinstance(password, str):
        return False
    try:
        return bcrypt.checkpw(_prehash(password), stored.encode("ascii"))
    except ValueError:  # a malformed stored hash never matches
        return False
