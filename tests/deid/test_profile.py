"""The Basic Profile table: transcribed faithfully, and its compound codes resolved safely."""

from __future__ import annotations

import re

import pytest
from pydicom.datadict import dictionary_description

from mmdx.deid.profile import BASIC_PROFILE, CODES, Action, ProfileTable, resolve_action


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def test_every_tag_carries_the_name_the_dicom_dictionary_gives_it() -> None:
    checked = 0
    for tag, name, code in BASIC_PROFILE:
        assert code in CODES, (tag, code)
        if "x" in tag:
            continue
        assert _norm(dictionary_description(int(tag.replace(",", ""), 16))) == _norm(name), tag
        checked += 1
    assert checked > 400  # the whole Basic Profile list, not a handful


def test_no_tag_listed_twice() -> None:
    tags = [tag for tag, _, _ in BASIC_PROFILE]
    assert len(tags) == len(set(tags))
    assert len(ProfileTable()) == len(BASIC_PROFILE)


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        (0x00100010, "Z"),  # Patient's Name
        (0x00100020, "Z"),  # Patient ID
        (0x00100030, "Z"),  # Patient's Birth Date
        (0x00101040, "X"),  # Patient's Address
        (0x00080090, "Z"),  # Referring Physician's Name
        (0x00081070, "X/Z/D"),  # Operators' Name
        (0x0020000D, "U"),  # Study Instance UID
        (0x00080018, "U"),  # SOP Instance UID
        (0x00081140, "X/Z/U*"),  # Referenced Image Sequence
        (0x00400275, "X"),  # Request Attributes Sequence
        (0x00101002, "X"),  # Other Patient IDs Sequence
        (0x60023000, "X"),  # Overlay Data, repeating group 60xx
        (0x601E4000, "X"),  # Overlay Comments
        (0x50001234, "X"),  # Curve Data 50xx,xxxx
    ],
)
def test_rule_of_a_tag(tag: int, code: str) -> None:
    rule = ProfileTable().rule(tag)
    assert rule is not None and rule.code == code


def test_unlisted_tags_have_no_rule() -> None:
    table = ProfileTable()
    for tag in (0x00280010, 0x7FE00010, 0x00200032, 0x00080060):  # Rows, Pixel Data, position, modality
        assert table.rule(tag) is None


@pytest.mark.parametrize(
    ("code", "vr", "action"),
    [
        ("X", "LO", Action.REMOVE),
        ("X/D", "LO", Action.REMOVE),
        ("C", "LO", Action.REMOVE),
        ("Z", "PN", Action.EMPTY),
        ("X/Z", "DA", Action.EMPTY),
        ("Z/D", "DA", Action.EMPTY),
        ("X/Z/D", "SH", Action.EMPTY),
        ("D", "LO", Action.DUMMY),
        ("K", "CS", Action.KEEP),
        ("U", "UI", Action.REMAP_UID),
        ("X/Z/U*", "SQ", Action.REMAP_UID),
    ],
)
def test_resolve_action(code: str, vr: str, action: Action) -> None:
    assert resolve_action(code, vr) is action


def test_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Basic Profile action code"):
        resolve_action("Q", "LO")
    with pytest.raises(ValueError, match="unknown action code"):
        ProfileTable((("0010,0010", "Patient's Name", "Q"),))
