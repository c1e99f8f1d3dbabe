"""Token positions to character spans: word merging, special tokens, truncation."""

from __future__ import annotations

import numpy as np
import pytest

from mmdx.data.note_spans import content_positions, covered_characters, special_positions, token_spans

TEXT = "No consolidation. COVID-19 swab"
# [CLS] no consolid ##ation . covid - 19 swab [SEP] [PAD]
OFFSETS = np.array(
    [[0, 0], [0, 2], [3, 11], [11, 16], [16, 17], [18, 23], [23, 24], [24, 26], [27, 31], [0, 0], [0, 0]]
)
MASK = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
ATTRIBUTION = np.array([0.0, 0.5, 0.25, 0.125, -0.1, 0.3, 0.0, 0.2, -0.4, 0.0, 0.0])


@pytest.mark.parametrize(
    ("merge", "expected"),
    [
        (
            True,
            [
                ("No", 0.5),
                ("consolidation", 0.375),
                (".", -0.1),
                ("COVID", 0.3),
                ("-", 0.0),
                ("19", 0.2),
                ("swab", -0.4),
            ],
        ),
        (
            False,
            [
                ("No", 0.5),
                ("consolid", 0.25),
                ("ation", 0.125),
                (".", -0.1),
                ("COVID", 0.3),
                ("-", 0.0),
                ("19", 0.2),
                ("swab", -0.4),
            ],
        ),
    ],
)
def test_spans_are_substrings_with_summed_attributions(merge, expected):
    spans = token_spans(TEXT, OFFSETS, MASK, ATTRIBUTION, merge_words=merge)
    assert [(s.text, pytest.approx(s.attribution)) for s in spans] == expected
    for span in spans:
        assert TEXT[span.start : span.end] == span.text
    assert sum(len(s.positions) for s in spans) == 8  # every content token exactly once


def test_special_and_content_positions():
    assert special_positions(OFFSETS, MASK).tolist() == [True] + [False] * 8 + [True, False]
    assert content_positions(OFFSETS, MASK).sum() == 8
    assert covered_characters(OFFSETS, MASK) == len(TEXT)


def test_truncated_note_covers_only_the_tokens_seen():
    mask = MASK.copy()
    mask[5:] = 0
    assert covered_characters(OFFSETS, mask) == 17
    spans = token_spans(TEXT, OFFSETS, mask, ATTRIBUTION)
    assert [s.text for s in spans] == ["No", "consolidation", "."]


def test_empty_note_gives_no_span():
    offsets = np.zeros((4, 2), dtype=int)
    assert token_spans("", offsets, np.array([1, 1, 0, 0]), np.zeros(4)) == []
    assert covered_characters(offsets, np.array([1, 1, 0, 0])) == 0


def test_phrases_keep_a_negation_with_its_scope_and_sum_their_words():
    import re

    from mmdx.data.note_spans import TokenSpan, phrase_spans

    text = (
        "No consolidation. Productive cough has been ruled out. Findings consistent with productive cough, "
        "but no rigors; denies chest pain. Lives with partner."
    )
    words = [TokenSpan(m.group(), m.start(), m.end(), 1.0, ()) for m in re.finditer(r"\w+|[^\w\s]", text)]
    words[1] = TokenSpan(words[1].text, words[1].start, words[1].end, -4.0, ())  # "consolidation"
    phrases = phrase_spans(text, words)
    assert [(p.text, p.negated) for p in phrases] == [
        ("No consolidation", True),
        ("Productive cough has been ruled out", True),
        ("Findings consistent with productive cough", False),
        ("but no rigors", True),
        ("denies chest pain", True),
        ("Lives with partner", False),
    ]
    assert phrases[0].attribution == -3.0 and phrases[2].attribution == 5.0  # punctuation is left out
    assert all(text[p.start : p.end] == p.text for p in phrases)
    assert phrase_spans(text, []) == []
