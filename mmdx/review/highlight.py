"""Clinical notes with their words highlighted by attribution, as escaped HTML.

The note text comes from the cohort and is untrusted: every character of it goes through
:func:`html.escape` before it is wrapped in markup, so a note containing ``<script>`` shows those characters
as text. The only markup in the output is built here, from numbers.

Colours: a word that pushed the prediction towards the positive class is shaded red, one that pushed it
towards the negative class blue; the shade's opacity is the word's attribution relative to the largest
absolute attribution in the note.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

POSITIVE_RGB = (214, 39, 40)
NEGATIVE_RGB = (31, 119, 180)
MAX_ALPHA = 0.75


@dataclass(frozen=True)
class TokenAttribution:
    """A word or token of the note: ``[start, end)`` character offsets into the joined note text."""

    start: int
    end: int
    attribution: float


def token_attributions(tokens: Iterable[Mapping[str, Any]] | None) -> list[TokenAttribution]:
    """Spans from an explanation's ``tokens`` list, keeping only well-formed ones (integer offsets with
    ``0 <= start < end``, finite attribution)."""
    spans = []
    for token in tokens or []:
        try:
            start, end = token["start"], token["end"]
            value = float(token["attribution"])
        except (KeyError, TypeError, ValueError):
            continue
        if (
            isinstance(start, bool)
            or isinstance(end, bool)
            or not isinstance(start, int)
            or not isinstance(end, int)
        ):
            continue
        if 0 <= start < end and math.isfinite(value):
            spans.append(TokenAttribution(start, end, value))
    return spans


def _style(value: float, scale: float) -> str:
    rgb = POSITIVE_RGB if value > 0 else NEGATIVE_RGB
    alpha = 0.0 if scale <= 0 else min(1.0, abs(value) / scale) * MAX_ALPHA
    return f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.3f}); border-radius: 3px"


def _escaped(text: str) -> str:
    return html.escape(text, quote=True).replace("\n", "<br>")


@dataclass(frozen=True)
class HighlightedNote:
    """The HTML of a highlighted note and what could not be placed."""

    html: str
    placed: int  # spans highlighted
    skipped: int  # spans outside the text or overlapping an earlier span


def highlight_note(text: str, spans: Iterable[TokenAttribution]) -> HighlightedNote:
    """The note as HTML with each span wrapped in a shaded ``<span>`` whose tooltip gives its attribution.

    Spans are placed in order of their start; one that overlaps an earlier span or reaches past the end of
    the text is skipped (and counted). Text between spans is escaped as it is.
    """
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    valid = [s for s in ordered if s.end <= len(text)]
    scale = max((abs(s.attribution) for s in valid), default=0.0)
    parts: list[str] = []
    cursor = 0
    placed = 0
    for span in valid:
        if span.start < cursor:
            continue
        parts.append(_escaped(text[cursor : span.start]))
        parts.append(
            f'<span style="{_style(span.attribution, scale)}" title="attribution {span.attribution:+.3g}">'
            f"{_escaped(text[span.start : span.end])}</span>"
        )
        cursor = span.end
        placed += 1
    parts.append(_escaped(text[cursor:]))
    body = "".join(parts)
    return HighlightedNote(
        html=f'<div class="mmdx-note" style="line-height: 1.8; white-space: normal">{body}</div>',
        placed=placed,
        skipped=len(ordered) - placed,
    )


def plain_note(text: str) -> str:
    """The note as escaped HTML without highlights (no explanation)."""
    return f'<div class="mmdx-note" style="line-height: 1.8">{_escaped(text)}</div>'
