"""Note scrubbing: identifying spans become typed placeholders, clinical content survives."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdx.data.synth import AFFIRMED_TEMPLATES, FILLER_SENTENCES, FINDINGS, NEGATED_TEMPLATES
from mmdx.deid.text import NoteScrubber, PatientIdentity, Placeholder, shift_iso


@pytest.mark.parametrize(
    ("text", "secret", "placeholder"),
    [
        ("Seen on 03/04/2024 in clinic.", "03/04/2024", "[DATE]"),
        ("Seen on 3.4.24 in clinic.", "3.4.24", "[DATE]"),
        ("Admitted 2024-03-04T10:15:00Z overnight.", "2024-03-04", "[DATE]"),
        ("Review on 4 March 2024.", "March", "[DATE]"),
        ("Review on 4th of Mar, 2024.", "Mar", "[DATE]"),
        ("Review on March 4, 2024.", "March", "[DATE]"),
        ("Discharged in September 2023.", "September", "[DATE]"),
        ("DICOM date 20240304 noted.", "20240304", "[DATE]"),
        ("Call (555) 123-4567 tomorrow.", "123-4567", "[PHONE]"),
        ("Call +44 20 7946 0958 tomorrow.", "7946", "[PHONE]"),
        ("Write to jane.doe@example.org today.", "jane.doe", "[EMAIL]"),
        ("MRN: 12345678 on file.", "12345678", "[ID]"),
        ("Record number ZX-99812 on file.", "ZX-99812", "[ID]"),
        ("Hospital no A1234567 on file.", "A1234567", "[ID]"),
        ("Lives at 42 Elm Grove Road, Springfield, IL 62704.", "Elm Grove", "[ADDRESS]"),
        ("Lives at 221B Baker Street, London NW1 6XE.", "Baker", "[ADDRESS]"),
        ("Seen by Dr O'Neil today.", "O'Neil", "[NAME]"),
        ("Mr. John Smith is comfortable.", "John Smith", "[NAME]"),
        ("Name: Anna Karenina, admitted.", "Karenina", "[NAME]"),
        ("See https://portal.example.org/patient/77 for more.", "portal", "[URL]"),
    ],
)
def test_identifying_spans_are_replaced(text: str, secret: str, placeholder: str) -> None:
    result = NoteScrubber().scrub(text)
    assert secret not in result.text
    assert placeholder in result.text
    assert result.counts[placeholder] >= 1


def test_clinical_sentences_of_the_generator_survive_unchanged() -> None:
    scrubber = NoteScrubber(names={"Smith", "Consultant"}, identifiers={"C00012"})
    sentences = list(FILLER_SENTENCES)
    for finding in FINDINGS:
        for template in AFFIRMED_TEMPLATES + NEGATED_TEMPLATES:
            sentences.append(template.format(f=finding, F=finding.capitalize()))
    sentences += ["BP 120/80, HR 88, SpO2 96 %, temperature 38.2 C.", "Creatinine 1.2 mg/dL at 08:30."]
    for sentence in sentences:
        assert scrubber.scrub(sentence).text == sentence


def test_own_names_in_any_case_other_names_only_capitalised() -> None:
    scrubber = NoteScrubber(names={"Hope", "Garcia"})
    patient = PatientIdentity(names=frozenset({"rivera"}))
    text = "RIVERA and rivera spoke with Garcia; there is hope, and garcia agreed."
    out = scrubber.scrub(text, patient).text
    assert "rivera" not in out.lower()
    assert "Garcia" not in out and "there is hope" in out and "garcia agreed" in out


def test_known_identifiers_and_phrases() -> None:
    scrubber = NoteScrubber(identifiers={"CANARYMRN000123"})
    patient = PatientIdentity(phrases=(("7 Acacia Avenue, Hilltown", Placeholder.ADDRESS),))
    out = scrubber.scrub("Patient canarymrn000123 lives at 7 ACACIA AVENUE, HILLTOWN.", patient)
    assert out.text == "Patient [ID] lives at [ADDRESS]."


def test_repeated_placeholders_merge() -> None:
    patient = PatientIdentity(names=frozenset({"ada", "lovelace"}))
    assert NoteScrubber().scrub("Ada Lovelace attended.", patient).text == "[NAME] attended."


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2090, 1, 1)),
    st.integers(-365, -1),
    st.sampled_from(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f+01:00", "%Y-%m-%d %H:%M"]),
)
def test_shift_iso_keeps_format_and_moves_by_whole_days(moment: dt.datetime, days: int, fmt: str) -> None:
    text = moment.strftime(fmt)
    shifted = shift_iso(text, days)
    assert shifted is not None
    assert shifted[10:] == text[10:]  # time of day, fraction and zone untouched
    delta = dt.date.fromisoformat(shifted[:10]) - dt.date.fromisoformat(text[:10])
    assert delta.days == days


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "04/03/2024", ""])
def test_shift_iso_rejects_what_is_not_iso(value: str) -> None:
    assert shift_iso(value, -3) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wife: Mary Brown", "Wife: [NAME]"),
        ("Accompanied by his daughter, Anna Kowalska.", "Accompanied by his daughter, [NAME]."),
        (
            "Spoke with the patient's son (Jean-Luc Martin) by phone.",
            "Spoke with the patient's son ([NAME]) by phone.",
        ),
        ("Emergency contact: Pieter van der Berg, neighbour.", "Emergency contact: [NAME], neighbour."),
        ("Husband Søren Ødegård at the bedside.", "Husband [NAME] at the bedside."),
        ("Mary Brown (wife) was present.", "[NAME] (wife) was present."),
        ("GP: Dr. Okafor informed.", "GP: Dr. [NAME] informed."),
        ("Discussed with consultant Imre Szabó.", "Discussed with consultant [NAME]."),
        ("Seen by Aiko Tanaka, physiotherapist.", "Seen by [NAME], physiotherapist."),
        ("MRN 12345678 John Smith", "MRN [ID] [NAME]"),
        ("Next of kin: J. R. Alvarez", "Next of kin: [NAME]"),
        ("Mrs Østergaard attended.", "Mrs [NAME] attended."),
        ("GP: Dr van Northeim.", "GP: Dr [NAME]."),
        ("Name: Łucja Żak", "Name: [NAME]"),
    ],
)
def test_untitled_names_next_to_a_relationship_or_role_word(text: str, expected: str) -> None:
    result = NoteScrubber().scrub(text)
    assert result.text == expected
    assert result.counts[Placeholder.NAME.value] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "Mother: Type 2 diabetes.",
        "Father: Died aged 70 of MI.",
        "Son: Alive and well.",
        "Lives with his wife. She manages the medication.",
        "Sister: breast cancer at 45.",
        "Brother - Hypertension, on ramipril.",
        "Daughter: None known.",
        "Contact: Ward 7 nursing station.",
        "Wife is aware of the plan.",
        "MRN 12345678 Admitted overnight with cough.",
        "Father: Coeliac disease.",
        "Referred by Emergency Department.",
        "GP: Riverside Medical Practice.",
    ],
)
def test_relationship_words_before_clinical_words_leave_them(text: str) -> None:
    out = NoteScrubber().scrub(text).text
    assert "[NAME]" not in out, out
