"""The de-identification key: one secret from which every pseudonym, UID and date shift is derived.

Everything is an HMAC-SHA256 of the original value under the key, with a different purpose label for each
use, so that the same key always gives the same output (a series stays a series across files and runs, a
patient keeps one pseudonym and one date shift) while without the key nothing can be linked back.

The key file holds one line, ``mmdx-deid-key-v1 <64 hex digits>``. It is created owner-only (0600) when
missing, must never lie inside the de-identified output, and is never copied into it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from mmdx.errors import MmdxError

log = logging.getLogger(__name__)

KEY_HEADER = "mmdx-deid-key-v1"
KEY_BYTES = 32
#: dates move into the past by 1 to 365 days, one offset per patient
MAX_DAY_SHIFT = 365
#: a pseudonym carries 40 bits of the HMAC: collisions are checked, and a cohort of 10^5 patients has a
#: ~1 % chance of one, in which case the run stops and asks for a new key
PSEUDONYM_HEX = 10


class DeidKey:
    """A de-identification secret (32 random bytes) and the keyed functions derived from it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise MmdxError(f"a de-identification key needs at least 16 bytes of secret, got {len(secret)}")
        self._secret = bytes(secret)

    @classmethod
    def generate(cls) -> DeidKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """A valid DICOM UID for ``original``: ``2.25.<decimal of 128 keyed bits>`` (at most 44 characters).

        The 2.25 root takes a UUID-sized integer (PS3.5 B.2), so no organisation root is needed, and the same
        original UID always maps to the same new one.
        """
        return "2.25." + str(int.from_bytes(self._digest("uid", original.strip())[:16], "big"))

    def pseudonym(self, prefix: str, original: str) -> str:
        """``<prefix>-<10 hex digits>``, e.g. ``P-3fa2c09b1e`` for a patient ID."""
        return f"{prefix}-{self._digest('id/' + prefix, original).hex()[:PSEUDONYM_HEX]}"

    def day_shift(self, patient: str) -> int:
        """Days (−365 … −1) added to every date and date-time of ``patient``: intervals within a patient
        survive exactly, absolute dates do not."""
        return -(1 + int.from_bytes(self._digest("days", patient)[:8], "big") % MAX_DAY_SHIFT)

    def fingerprint(self) -> str:
        """A short one-way label of the key (for reports: which key was used, without revealing it)."""
        return self._digest("fingerprint", KEY_HEADER).hex()[:12]

    def to_text(self) -> str:
        return f"{KEY_HEADER} {self._secret.hex()}\n"

    def __repr__(self) -> str:  # never print the secret
        return f"DeidKey(fingerprint={self.fingerprint()})"


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def read_key(path: str | Path) -> DeidKey:
    """Read a key file written by :func:`load_or_create_key`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise MmdxError(f"cannot read the key file {path}: {exc}") from None
    parts = text.split()
    if len(parts) != 2 or parts[0] != KEY_HEADER:
        raise MmdxError(
            f"{path} is not an mmdx de-identification key (expected one line '{KEY_HEADER} <hex>'); "
            "pass the key file used before, or a new path to create one"
        )
    try:
        secret = bytes.fromhex(parts[1])
    except ValueError:
        raise MmdxError(f"{path}: the key is not hexadecimal; the file is damaged") from None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("key file %s is readable by others (mode %o); restrict it with chmod 600", path, mode)
    return DeidKey(secret)


def load_or_create_key(
    path: str | Path, forbidden: list[Path] | tuple[Path, ...] = ()
) -> tuple[DeidKey, bool]:
    """The key in ``path``, created with a fresh random secret (mode 0600) when the file does not exist.

    Returns ``(key, created)``. Refuses a key path inside any of ``forbidden`` (the output cohort): the key
    must never travel with the data it protects.
    """
    path = Path(path)
    for folder in forbidden:
        if _inside(path, Path(folder)):
            raise MmdxError(
                f"the key file {path} lies inside {folder}; the key must never be stored with the de-identified "
                "data. Keep it outside the output folder (e.g. --key-file ~/secrets/cohort.key)"
            )
    if path.exists():
        return read_key(path), False
    key = DeidKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created concurrently: use that one
        return read_key(path), False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.to_text())
    os.chmod(path, 0o600)
    return key, True
