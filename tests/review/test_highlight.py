"""Notes as escaped, highlighted HTML: no text of a note can become markup."""

from __future__ import annotations

import html
import re

from hypothesis import given
from hypothesis import strategies as st

from mmdx.review.highlight import TokenAttribution, highlight_note, plain_note, token_attributions

TAG = re.compile(r"<[^>]*>")


def visible_text(markup: str) -> str:
    """What a browser shows: tags removed (with <br> as newlines), entities decoded."""
    return html.unescape(TAG.sub("", markup.replace("<br>", "\n")))


def test_script_in_a_note_is_shown_as_text() -> None:
    text = "<script>alert('x')</script> Patient <b>stable</b> & afebrile"
    spans = token_attributions(
        [{"start": 0, "end": 8, "attribution": 0.5}, {"start": 29, "end": 36, "attribution": -1}]
    )
    out = highlight_note(text, spans)
    assert "<script>" not in out.html and "<b>" not in out.html
    assert "&lt;script&gt;" in out.html and "&amp; afebrile" in out.html
    assert visible_text(out.html) == text
    assert out.placed == 2 and out.skipped == 0


@st.composite
def notes_with_spans(draw: st.DrawFn) -> tuple[str, list[TokenAttribution]]:
    text = draw(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        start = draw(st.integers(0, len(text) + 2))
        end = draw(st.integers(start, len(text) + 3))
        spans.append(TokenAttribution(start, end, draw(st.floats(-5, 5, allow_nan=False))))
    return text, spans


@given(notes_with_spans())
def test_every_character_of_any_note_is_shown_as_text(case: tuple[str, list[TokenAttribution]]) -> None:
    text, spans = case
    out = highlight_note(text, spans)
    assert visible_text(out.html) == text
    # the only tags are the ones built here
    assert {t.split()[0].strip("</>") for t in TAG.findall(out.html)} <= {"div", "span", "br"}
    assert out.placed + out.skipped == len(spans)


def test_overlapping_and_out_of_range_spans_are_skipped() -> None:
    text = "consolidation noted"
    spans = [TokenAttribution(0, 13, 1.0), TokenAttribution(5, 10, 2.0), TokenAttribution(14, 40, 1.0)]
    out = highlight_note(text, spans)
    assert out.placed == 1 and out.skipped == 2
    assert out.html.count("<span") == 1


def test_colour_follows_sign_and_opacity_follows_size() -> None:
    out = highlight_note(
        "up down weak",
        [
            TokenAttribution(0, 2, 2.0),
            TokenAttribution(3, 7, -2.0),
            TokenAttribution(8, 12, 0.5),
        ],
    )
    styles = re.findall(r"rgba\((\d+), (\d+), (\d+), ([0-9.]+)\)", out.html)
    (r1, _, b1, a1), (r2, _, b2, a2), (_, _, _, a3) = styles
    assert int(r1) > int(b1) and int(b2) > int(r2)  # red for positive, blue for negative
    assert float(a1) == float(a2) > float(a3) > 0


def test_malformed_tokens_are_ignored() -> None:
    tokens = [
        {"start": 0, "end": 3, "attribution": 1.0},
        {"start": -1, "end": -1, "attribution": 1.0},  # placeholder of a token without offsets
        {"start": "0", "end": 3, "attribution": 1.0},
        {"start": 2, "end": 2, "attribution": 1.0},
        {"start": 0, "end": 3, "attribution": float("nan")},
        {"start": 0, "end": 3},
        {"start": True, "end": 3, "attribution": 1.0},
    ]
    assert token_attributions(tokens) == [TokenAttribution(0, 3, 1.0)]
    assert token_attributions(None) == []


def test_plain_note_escapes_and_keeps_line_breaks() -> None:
    out = plain_note("a < b\n\n<i>c</i>")
    assert "<i>" not in out and visible_text(out) == "a < b\n\n<i>c</i>"
