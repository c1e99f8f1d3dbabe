"""Token attributions mapped back to character spans of the case's joined note text.

The tokenizers mmdx uses (the cohort's own, trained with ``tokenizers``, or a pretrained model's) give
every token its character offsets ``(start, end)`` in the original text; special tokens ([CLS], [SEP])
and padding have empty spans ``(0, 0)``. :func:`token_spans` turns the per-position attributions ``[T]`` into spans:

- with ``merge_words=True`` (the default), the sub-word pieces of one word ("consolid" + "ation") are merged into
  one span whose attribution is the sum of its pieces' (exact for Integrated Gradients, which is additive
  over inputs). Two neighbouring pieces belong to one word when the second starts where the first ends and
  both consist of letters and digits only, so punctuation stays a span of its own, as the pre-tokenizer
  splits it;
- with ``merge_words=False`` every real token is its own span.

Each span's ``text`` is ``note[start:end]``: the exact substring of the original note (original case,
original characters), whatever normalisation the tokenizer applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenSpan:
    """One token or word of a note: its text, ``[start, end)`` character offsets and attribution.

    ``positions`` are the token positions (indices into ``text_ids``) the span covers.
    """

    text: str
    start: int
    end: int
    attribution: float
    positions: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end, "attribution": self.attribution}


def special_positions(offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[T]`` bool: real positions (mask 1) with an empty character span, i.e. [CLS]/[SEP]-like tokens."""
    offsets = np.asarray(offsets)
    return (np.asarray(mask) > 0) & (offsets[:, 0] == offsets[:, 1])


def content_positions(offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[T]`` bool: positions of real tokens that cover text (neither padding nor special tokens)."""
    offsets = np.asarray(offsets)
    return (np.asarray(mask) > 0) & (offsets[:, 1] > offsets[:, 0])


def _is_word_piece(piece: str) -> bool:
    return bool(piece) and all(ch.isalnum() for ch in piece)


def token_spans(
    text: str,
    offsets: np.ndarray,
    mask: np.ndarray,
    attributions: np.ndarray,
    merge_words: bool = True,
) -> list[TokenSpan]:
    """Spans of the note's tokens (or words) with their attributions, in text order.

    Args:
        text: the case's joined note text (the string the offsets refer to).
        offsets: ``[T, 2]`` int character offsets of each token position.
        mask: ``[T]``, 1 for real tokens, 0 for padding.
        attributions: ``[T]`` attribution of each token position (0 for padding and special tokens).
        merge_words: merge the pieces of one word into one span (see the module docs).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    attributions = np.asarray(attributions, dtype=np.float64)
    keep = content_positions(offsets, mask)
    spans: list[TokenSpan] = []
    current: list[int] = []

    def close() -> None:
        if current:
            start, end = int(offsets[current[0], 0]), int(offsets[current[-1], 1])
            total = float(attributions[current].sum())
            spans.append(TokenSpan(text[start:end], start, end, total, tuple(current)))
            current.clear()

    for position in np.flatnonzero(keep):
        start, end = int(offsets[position, 0]), int(offsets[position, 1])
        if current and merge_words:
            previous_start, previous_end = int(offsets[current[-1], 0]), int(offsets[current[-1], 1])
            joined = (
                start == previous_end
                and _is_word_piece(text[previous_start:previous_end])
                and _is_word_piece(text[start:end])
            )
            if not joined:
                close()
        else:
            close()
        current.append(int(position))
    close()
    return spans


def covered_characters(offsets: np.ndarray, mask: np.ndarray) -> int:
    """How many leading characters of the note the model saw (the end of its last real token)."""
    offsets = np.asarray(offsets)
    keep = content_positions(offsets, mask)
    return int(offsets[keep, 1].max()) if keep.any() else 0
