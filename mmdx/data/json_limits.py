"""JSON from untrusted files, parsed within limits: one JSON Lines document per line, bounded in size and depth.

Python's ``json`` module recurses once per nesting level, so a line of 100,000 opening brackets ends in a
``RecursionError`` that no ordinary ``except`` for bad JSON catches; a single line of gigabytes would be read
into memory whole. :func:`parse_json_line` refuses both before the parser sees them, with
:class:`JsonLimitExceeded`, and :func:`read_json_lines` reads a file line by line without ever holding more
than ``MAX_LINE_BYTES`` of one line. Limits are read at call time, so a deployment may change them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Largest line accepted, in bytes of UTF-8 (a long discharge summary is a few tens of kilobytes).
MAX_LINE_BYTES = 4 * 1024 * 1024
#: Deepest nesting of arrays and objects accepted (a note line is an object of strings: depth 1).
MAX_DEPTH = 64

#: A JSON string (with its escapes) or one bracket: enough to measure nesting without parsing.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_CHUNK = 1 << 20


class JsonLimitExceeded(ValueError):
    """A JSON text larger or more deeply nested than the limits; its message says which and by how much."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, brackets inside strings not counted."""
    if text.count("[") + text.count("{") <= 1:
        return text.count("[") + text.count("{")
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth = max(0, depth - 1)
    return deepest


def check_json_limits(text: str, max_bytes: int | None = None, max_depth: int | None = None) -> None:
    """Raise :class:`JsonLimitExceeded` when ``text`` is longer than ``max_bytes`` (UTF-8) or nested deeper
    than ``max_depth`` (defaults: :data:`MAX_LINE_BYTES`, :data:`MAX_DEPTH`)."""
    max_bytes = MAX_LINE_BYTES if max_bytes is None else max_bytes
    max_depth = MAX_DEPTH if max_depth is None else max_depth
    # a character is at most 4 bytes: measure the encoding only when it could matter
    if len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise JsonLimitExceeded(
            f"{len(text.encode('utf-8', 'surrogatepass')):,} bytes, more than {max_bytes:,}"
        )
    if text.count("[") + text.count("{") > max_depth:
        depth = nesting_depth(text)
        if depth > max_depth:
            raise JsonLimitExceeded(f"nested {depth:,} levels deep, more than {max_depth}")


def parse_json_line(text: str, max_bytes: int | None = None, max_depth: int | None = None) -> object:
    """``json.loads(text)`` after :func:`check_json_limits`. Raises :class:`JsonLimitExceeded` or
    :class:`json.JSONDecodeError`; never ``RecursionError``."""
    check_json_limits(text, max_bytes, max_depth)
    try:
        return json.loads(text)
    except RecursionError:  # a limit raised above the interpreter's own recursion limit
        raise JsonLimitExceeded("nested too deeply for the JSON parser") from None


@dataclass(frozen=True)
class RawLine:
    """One line of a JSON Lines file: its 1-based ``number`` and either its ``text`` or why it was not read
    (``problem``: ``"too_large"`` or ``"encoding"``, described in ``detail``)."""

    number: int
    text: str | None
    problem: str | None = None
    detail: str = ""


def read_json_lines(path: Path, max_bytes: int | None = None) -> Iterator[RawLine]:
    """The non-blank lines of ``path``, decoded as strict UTF-8, each at most ``max_bytes`` long.

    A longer line is skipped to its end without being held in memory (``problem="too_large"``); a line
    that is not valid UTF-8 is reported (``problem="encoding"``) instead of having its bad bytes replaced.
    """
    max_bytes = MAX_LINE_BYTES if max_bytes is None else max_bytes
    with open(path, "rb") as handle:
        number = 0
        while True:
            raw = handle.readline(max_bytes + 1)
            if not raw:
                return
            number += 1
            if len(raw) > max_bytes and not raw.endswith(b"\n"):
                size = len(raw)
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(_CHUNK)
                    size += len(raw)
                yield RawLine(number, None, "too_large", f"{size:,} bytes, more than {max_bytes:,}")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if raw.strip():
                    yield RawLine(
                        number,
                        None,
                        "encoding",
                        f"byte {exc.start + 1} (0x{raw[exc.start]:02x}) is not UTF-8",
                    )
                continue
            text = text.rstrip("\r\n")
            if number == 1:
                text = text.removeprefix("\ufeff")  # the byte-order mark some Windows editors write
            if text.strip():
                yield RawLine(number, text)
