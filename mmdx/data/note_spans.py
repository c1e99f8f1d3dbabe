"""Tokens of a case's joined note text mapped back to character spans, words and phrases.

Used by the tokenisation (:func:`negated_positions`: the tokens inside a negation's scope) and by the
explanations (token attributions summed over words and phrases).

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


# ---------------------------------------------------------------------------------------------------------
# Phrases: clauses, with a negation cue and its scope kept together
# ---------------------------------------------------------------------------------------------------------
#: Words and word pairs that negate what follows them in their clause (after NegEx, Chapman et al. 2001).
NEGATION_PRE = (
    "no",
    "not",
    "without",
    "denies",
    "denied",
    "negative for",
    "free of",
    "absence of",
    "no evidence of",
    "no signs of",
    "resolved",
)
#: Cues that negate what precedes them in their clause.
NEGATION_POST = (
    "ruled out",
    "has been ruled out",
    "was ruled out",
    "excluded",
    "is absent",
    "absent",
    "unlikely",
)
#: Words that end a negation's scope and start a new clause.
CLAUSE_BREAKS = ("but", "however", "although", "though", "except", "apart from", "aside from")
_CLAUSE_PUNCTUATION = set(".;:!?\n")


@dataclass(frozen=True)
class PhraseSpan:
    """A clause of a note, or the part of one a negation cue governs, as one unit.

    ``attribution`` is the sum of its words' attributions; ``negated``: inside a negation's scope (the cue
    included); ``words``: indices into the word spans it groups.
    """

    text: str
    start: int
    end: int
    attribution: float
    negated: bool
    words: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "attribution": self.attribution,
            "negated": self.negated,
        }


def _match(words: list[str], i: int, cues: tuple[str, ...]) -> int:
    """Length in words of the longest cue starting at word ``i`` (0 when none)."""
    best = 0
    for cue in cues:
        parts = cue.split()
        if words[i : i + len(parts)] == parts:
            best = max(best, len(parts))
    return best


def _clauses(spans: list[TokenSpan]) -> list[list[int]]:
    """Word indices grouped into clauses: split after clause punctuation and before a clause break."""
    clauses: list[list[int]] = [[]]
    lowered = [s.text.lower() for s in spans]
    for i, span in enumerate(spans):
        if _match(lowered, i, CLAUSE_BREAKS) and clauses[-1]:
            clauses.append([])
        clauses[-1].append(i)
        if span.text and all(ch in _CLAUSE_PUNCTUATION for ch in span.text):
            clauses.append([])
    return [c for c in clauses if c]


def _split_negation(clause: list[int], lowered: list[str]) -> list[tuple[list[int], bool]]:
    """A clause -> (words, negated) parts: a pre-negation cue and everything after it in the clause, a
    post-negation cue and everything before it, the rest of the clause as it is."""
    words = [lowered[i] for i in clause]
    for k in range(len(words)):
        if _match(words, k, NEGATION_PRE):
            if all(_match(words, j, CLAUSE_BREAKS) for j in range(k)):  # "but no rigors": one unit
                return [(clause, True)]
            parts = [(clause[:k], False), (clause[k:], True)]
            return [(p, n) for p, n in parts if p]
    for k in range(len(words)):
        length = _match(words, k, NEGATION_POST)
        if length:
            parts = [(clause[: k + length], True), (clause[k + length :], False)]
            return [(p, n) for p, n in parts if p]
    return [(clause, False)]


def phrase_spans(text: str, spans: list[TokenSpan]) -> list[PhraseSpan]:
    """Group word ``spans`` (in text order) into phrases: clauses split at punctuation and at words such as
    "but", each clause split once more where a negation cue starts (or, for cues such as "ruled out", ends)
    its scope, so that "no consolidation" and "productive cough has been ruled out" are each one negated
    unit and "consolidation" in "consolidation but no effusion" stays affirmed. Punctuation-only spans end
    their phrase but do not count in it."""
    lowered = [s.text.lower() for s in spans]
    phrases = []
    for clause in _clauses(spans):
        words = [i for i in clause if any(ch.isalnum() for ch in spans[i].text)]
        for part, negated in _split_negation(words, lowered) if words else []:
            start, end = spans[part[0]].start, spans[part[-1]].end
            total = float(sum(spans[i].attribution for i in part))
            phrases.append(PhraseSpan(text[start:end], start, end, total, negated, tuple(part)))
    return phrases


def negated_positions(text: str, offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[T]`` bool: the token positions inside a negation's scope, cue included ("no evidence of
    consolidation", "productive cough has been ruled out"), as :func:`phrase_spans` delimits them; special
    tokens, padding and punctuation are never marked."""
    spans = token_spans(text, offsets, mask, np.zeros(len(offsets)))
    marked = np.zeros(len(offsets), dtype=bool)
    for phrase in phrase_spans(text, spans):
        if phrase.negated:
            for word in phrase.words:
                marked[list(spans[word].positions)] = True
    return marked
