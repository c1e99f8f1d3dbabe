"""Notes: parsing notes.jsonl, time-ordered joining, and a tokenizer with character offsets."""

from __future__ import annotations

import json

from mmdx.data.issues import IssueCode
from mmdx.data.text import encode_notes, parse_notes, train_note_tokenizer


def _lines(*docs) -> list[tuple[int, str]]:
    return [(i, d if isinstance(d, str) else json.dumps(d)) for i, d in enumerate(docs, start=1)]


def test_notes_joined_in_time_order_and_bad_lines_reported() -> None:
    parsed = parse_notes(
        _lines(
            {"case_id": "a", "text": "Second.", "time": "2024-01-02T00:00:00Z"},
            {"case_id": "a", "text": "First.", "time": "2024-01-01T00:00:00Z"},
            {"case_id": "a", "text": "Undated."},
            '{"case_id": "a", "text": "broken',
            {"case_id": "ghost", "text": "x"},
            {"case_id": "a", "text": "   "},
            {"case_id": "a"},
            {"case_id": "a", "text": "bad time", "time": "yesterday"},
        ),
        {"a"},
        "notes.jsonl",
    )
    assert parsed.joined("a") == "Undated.\n\nbad time\n\nFirst.\n\nSecond."
    assert [i.code for i in parsed.unattached] == [IssueCode.NOTE_MALFORMED, IssueCode.UNKNOWN_CASE_ID]
    codes = sorted(i.code for i in parsed.case_issues["a"])
    assert codes == sorted([IssueCode.NOTE_EMPTY, IssueCode.NOTE_MALFORMED, IssueCode.TIME_INVALID])
    assert parsed.joined("nobody") is None


def test_tokenizer_offsets_map_back_to_the_text() -> None:
    texts = ["No evidence of consolidation.", "Consolidation is present. Rigors noted."] * 5
    tokenizer = train_note_tokenizer(texts, vocab_size=200, min_frequency=1)
    encoded = encode_notes(tokenizer, texts[:2], max_length=16)
    assert encoded.ids.shape == (2, 16) and encoded.mask.sum(1).min() > 2
    for row, text in enumerate(texts[:2]):
        for token, (start, end), real in zip(
            encoded.tokens[row], encoded.offsets[row], encoded.mask[row], strict=False
        ):
            if real and token not in ("[CLS]", "[SEP]"):
                assert text[start:end].lower() == token.removeprefix("##")
    truncated = encode_notes(tokenizer, ["word " * 100], max_length=8)
    assert truncated.mask.sum() == 8


def test_a_deeply_nested_line_is_a_typed_issue_on_its_line() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    parsed = parse_notes(
        _lines({"case_id": "a", "text": "Kept."}, deep, '{"case_id": "a", "text": ' + deep + "}"),
        {"a"},
        "notes.jsonl",
    )
    assert parsed.joined("a") == "Kept."
    issues = parsed.unattached + parsed.case_issues.get("a", [])
    assert sorted((i.code, i.row) for i in issues) == [
        (IssueCode.NOTE_LIMIT_EXCEEDED, 2),
        (IssueCode.NOTE_LIMIT_EXCEEDED, 3),
    ]
    assert all("deep" in i.message for i in issues)


def test_brackets_inside_note_text_do_not_count_as_nesting() -> None:
    text = "Findings: " + "[" * 500 + " (sic) " + "{" * 500
    parsed = parse_notes(_lines({"case_id": "a", "text": text}), {"a"}, "notes.jsonl")
    assert parsed.joined("a") == text and not parsed.unattached


def test_negation_marks_the_tokens_in_a_negations_scope() -> None:
    texts = [
        "No evidence of consolidation. Rigors noted.",
        "Consolidation is present. Productive cough has been ruled out.",
    ]
    tokenizer = train_note_tokenizer(texts * 5, vocab_size=200, min_frequency=1)
    plain = encode_notes(tokenizer, texts, max_length=24)
    marked = encode_notes(tokenizer, texts, max_length=24, negation=True)
    vocabulary = tokenizer.get_vocab_size()
    assert marked.tokens == plain.tokens and (marked.offsets == plain.offsets).all()
    assert ((marked.ids == plain.ids) | (marked.ids == plain.ids + vocabulary)).all()
    for row in range(2):
        negated = {
            token
            for token, shifted, real in zip(
                marked.tokens[row], marked.ids[row] >= vocabulary, marked.mask[row], strict=False
            )
            if real and shifted
        }
        expected = [
            {"no", "evidence", "of", "consolidation"},
            {"productive", "cough", "has", "been", "ruled", "out"},
        ]
        assert negated == expected[row]
    # the same finding affirmed keeps its plain id; negated it does not
    consolidation = [marked.ids[r][marked.tokens[r].index("consolidation")] for r in (0, 1)]
    assert consolidation[0] == consolidation[1] + vocabulary
