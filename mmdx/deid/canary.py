"""Canary scans: prove that no identifying value of an identified cohort reached any output byte.

An identified synthetic cohort (``mmdx synth --phi``) lists its canaries in ``ground_truth/phi_canaries.json``:
patient names, MRNs, case IDs, phone numbers, e-mails, street names, dates of birth, original UIDs.
:func:`find_canaries` scans files and folders for every one of them:

* file **names** and contents, case-insensitively (a lower-casing tokenizer must not hide a leak);
* **gzip** members (``.nii.gz``, ``.gz``) are decompressed, **zip** archives (``.npz``, ``.zip``) opened member
  by member, and **Parquet** files decoded to text as well as scanned raw, since compression can split a
  string across back-references;
* a canary that starts or ends with a digit only counts where it is not part of a longer number, so that
  an 8-digit date of birth is not "found" inside the digits of a floating-point metric.

The dashboard and audit report tests call it the same way: ``find_canaries([run_dir, audit_html],
canaries) == []``.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: members larger than this are scanned raw only (a decompression bomb must not exhaust memory)
MAX_DECOMPRESSED = 1 << 30


@dataclass(frozen=True)
class CanaryHit:
    """One canary found: ``path`` (the file), ``canary`` (the value), ``where`` (``name``, ``content``,
    ``gzip``, ``zip:<member>`` or ``parquet``) and ``offset`` (byte offset in what was scanned)."""

    path: str
    canary: str
    where: str
    offset: int


def _trie_pattern(words: list[bytes]) -> bytes:
    """A regex matching any of ``words`` whose alternations share prefixes (fast with thousands of words)."""
    trie: dict = {}
    for word in words:
        node = trie
        for byte in word:
            node = node.setdefault(byte, {})
        node[-1] = True

    def render(node: dict) -> bytes:
        end = -1 in node
        branches = [re.escape(bytes([b])) + render(child) for b, child in sorted(node.items()) if b != -1]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if end:
            return b"(?:" + body + b")?"
        return body

    return render(trie)


class CanaryScanner:
    """Compiled canaries; :meth:`scan_bytes` and :meth:`scan_paths` report every hit."""

    def __init__(self, canaries: Iterable[str | dict]) -> None:
        values = {str(c["value"] if isinstance(c, dict) else c).strip() for c in canaries}
        values = {v for v in values if len(v) >= 4}  # shorter strings are not distinctive
        if not values:
            raise ValueError("no canaries to scan for (each must have at least 4 characters)")
        self._lower = {v.lower().encode(): v for v in values}
        words = sorted(self._lower, key=len, reverse=True)
        self._pattern = re.compile(_trie_pattern(words), re.IGNORECASE)

    def scan_bytes(self, data: bytes) -> list[tuple[str, int]]:
        """``(canary, offset)`` of every canary in ``data``."""
        hits = []
        pos = 0
        while True:
            match = self._pattern.search(data, pos)
            if match is None:
                return hits
            start, end = match.span()
            canary = self._lower.get(match.group(0).lower())
            if canary is not None and self._bounded(data, start, end, canary):
                hits.append((canary, start))
                pos = end
            else:
                pos = start + 1

    @staticmethod
    def _bounded(data: bytes, start: int, end: int, canary: str) -> bool:
        if canary[0].isdigit() and start > 0 and (chr(data[start - 1]).isdigit() or data[start - 1] == 0x2E):
            return False
        if canary[-1].isdigit() and end < len(data) and chr(data[end]).isdigit():
            return False
        return True

    def scan_file(self, path: Path, label: str) -> list[CanaryHit]:
        hits = [CanaryHit(label, c, "name", o) for c, o in self.scan_bytes(label.encode("utf-8", "replace"))]
        try:
            data = path.read_bytes()
        except OSError:
            return hits
        hits += [CanaryHit(label, c, "content", o) for c, o in self.scan_bytes(data)]
        for where, decoded in _decoded_views(path, data):
            hits += [CanaryHit(label, c, where, o) for c, o in self.scan_bytes(decoded)]
        return hits

    def scan_paths(self, paths: Iterable[str | Path]) -> list[CanaryHit]:
        hits: list[CanaryHit] = []
        for root in paths:
            root = Path(root)
            if root.is_file():
                hits += self.scan_file(root, str(root))
            elif root.is_dir():
                for path in sorted(root.rglob("*")):
                    label = str(path)
                    if path.is_file():
                        hits += self.scan_file(path, label)
                    else:
                        hits += [CanaryHit(label, c, "name", o) for c, o in self.scan_bytes(label.encode())]
        return hits


def _decoded_views(path: Path, data: bytes) -> list[tuple[str, bytes]]:
    """The decompressed or decoded forms of ``data`` worth scanning besides the raw bytes."""
    views: list[tuple[str, bytes]] = []
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                views.append(("gzip", fh.read(MAX_DECOMPRESSED)))
        except (OSError, EOFError):
            pass
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if info.file_size <= MAX_DECOMPRESSED:
                        views.append((f"zip:{info.filename}", archive.read(info)))
        except (zipfile.BadZipFile, OSError):
            pass
    if data[:4] == b"PAR1":
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
            views.append(("parquet", table.to_pandas().to_csv(index=False).encode("utf-8", "replace")))
            views.append(("parquet", str(table.schema.metadata or {}).encode("utf-8", "replace")))
        except Exception:  # noqa: BLE001 -- an unreadable parquet is still scanned raw
            pass
    return views


def find_canaries(paths: Iterable[str | Path], canaries: Iterable[str | dict]) -> list[CanaryHit]:
    """Every occurrence of any canary in the files under ``paths`` (files or folders, scanned recursively),
    in names and contents, decompressed where compressed. An empty list means no leak."""
    return CanaryScanner(canaries).scan_paths(paths)


def load_canaries(cohort: str | Path) -> list[dict]:
    """The canaries (``[{"value", "kind"}]``) of an identified cohort written by ``mmdx synth --phi``."""
    from mmdx.data.synth import phi_canaries

    return phi_canaries(cohort)


__all__ = ["CanaryHit", "CanaryScanner", "find_canaries", "load_canaries"]
