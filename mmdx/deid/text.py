"""Scrubbing clinical notes and other free text: identifying spans become typed placeholders.

Replaced, in this order (so that a longer pattern wins over the pieces it contains):

=================  ==========================================================================================
``[EMAIL]``        e-mail addresses
``[URL]``          web addresses
``[PHRASE]`` …     literal values known for the patient (address, phone, e-mail from the cases table or the
                   DICOM headers), replaced by their own placeholder type
``[ID]``           a value after a record-number label (``MRN``, ``NHS no``, ``Record no``, ``Acc``, ``ID``…),
                   and any token equal to a known identifier (patient ID, case ID, accession number, …)
``[DATE]``         dates in ISO (2024-03-04), numeric (03/04/2024, 4.3.24), written (4 March 2024, March 4th,
                   2024, Mar 2024, 4 Mar) and compact (20240304) forms; a date-time is replaced whole
``[PHONE]``        phone numbers of 9 or more digits, with optional country code and brackets
``[ADDRESS]``      street addresses (number, capitalised street name, street type, optional town and ZIP),
                   PO boxes and UK postcodes
``[NAME]``         the patient's own names in any case; the names of anyone else known to the cohort (other
                   patients, physicians, operators) when capitalised; capitalised words after a title
                   (Dr, Mr, Mrs, Ms, Prof, Nurse…) or a name label (``Name:``); untitled names next to a
                   relationship or role word ("Wife: Mary Brown", "his daughter, Anna", "seen by Aiko
                   Tanaka", "consultant Imre Szabó", "Mary Brown (wife)") or right after an identifier
                   ("MRN 12345678 John Smith")
``[ID]``           remaining long numbers and codes with five or more digits in a row
=================  ==========================================================================================

Matching a name only when it is the patient's own, or capitalised, keeps common words that happen to be
someone's name ("May", "Hope") in the rest of the text. Next to a relationship or role word, up to four
capitalised words (with name particles such as "van der", and initials) count as a name unless they are
clinical or common words that often follow those words ("Mother: Type 2 diabetes", "Son: Alive and
well"), name a department or practice ("Referred by Emergency Department") or a condition ("Father:
Coeliac disease"); names that no cue and no list points to stay, so the cohort's own names matter. Times of day and ages are kept. The scrubber errs on
the side of removal: a five-digit lab value written without a unit becomes ``[ID]``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Placeholder(StrEnum):
    NAME = "[NAME]"
    DATE = "[DATE]"
    PHONE = "[PHONE]"
    EMAIL = "[EMAIL]"
    ID = "[ID]"
    ADDRESS = "[ADDRESS]"
    URL = "[URL]"


_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2}|[ap]\.?m\.?)?)?"
_DATE_PATTERNS = [
    rf"\b\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}{_TIME}(?![\d])",  # 2024-03-04, 2024/03/04 12:30
    rf"\b\d{{1,2}}[-/.]\d{{1,2}}[-/.](?:\d{{4}}|\d{{2}})(?![\d/.-]\d){_TIME}",  # 03/04/2024, 4.3.24
    rf"\b\d{{1,2}}{_ORD}(?:\s+of)?\s+{_MONTH},?\s+\d{{4}}\b",  # 4 March 2024, 4th of March, 2024
    rf"\b{_MONTH}\s+\d{{1,2}}{_ORD},?\s+\d{{4}}\b",  # March 4, 2024
    rf"\b{_MONTH}\s+\d{{4}}\b",  # March 2024
    rf"\b\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}(?![a-z])",  # 4 March, 4th of Mar
    rf"\b{_MONTH}\s+\d{{1,2}}{_ORD}\b(?!:)",  # March 4th
    r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b",  # 20240304
]
_DATE = re.compile("|".join(f"(?:{p})" for p in _DATE_PATTERNS), re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,3}(?![\w])"
)
_STREET = (
    r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Boulevard|Blvd|Way|Court|Ct|Place|Pl|Terrace|Close|Crescent|"
    r"Square|Sq|Highway|Hwy|Parkway|Pkwy|Drive|Gardens|Grove|Row|Walk)"
)
_ADDRESS = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Z][\w'’.-]*\s+){{1,4}}{_STREET}\b\.?"
    r"(?:,\s*(?:Apt|Unit|Flat)\.?\s*\w+)?"
    r"(?:,\s*[A-Z][A-Za-z'’-]+(?:\s+[A-Z][A-Za-z'’-]+){0,2}(?=[,.\s]|$))?"
    r"(?:,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?|,?\s+[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b)?"
    r"|\bP\.?\s?O\.?\s+Box\s+\d+\b"
    r"|\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"
)
_ID_LABEL = re.compile(
    r"\b(?:MRN|NHS(?:\s+(?:no|number))?|medical\s+record(?:\s+(?:no|number))?|record\s+(?:no|number)|"
    r"hospital\s+(?:no|number)|acc(?:ession)?(?:\s+(?:no|number))?|patient\s+id|case\s+id|ID|SSN|"
    r"account(?:\s+(?:no|number))?)\b\.?\s*(?:no\.?\s*)?[:#]?\s*(?P<value>[A-Z0-9][A-Z0-9_/-]{3,})",
    re.IGNORECASE,
)
#: A capital letter of the Latin scripts (Ø, Ł, Ş... as well as A-Z): names are not all English.
_CAP = "[" + re.escape("".join(c for c in map(chr, range(0x41, 0x250)) if c.isupper())) + "]"
#: Lower-case particles that may open a surname after a title ("Dr van der Berg", "Mr de Beer").
_SURNAME_PARTICLES = r"(?:(?:van|von|de|der|den|del|della|di|da|du|dos|das|le|la|ten|ter|al|el)\s+){0,2}"
_TITLE_NAME = re.compile(
    r"\b(?P<title>Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Nurse)\.?\s+"
    rf"(?P<value>{_SURNAME_PARTICLES}{_CAP}[\w'’-]*(?:\s+(?:{_CAP}\.\s*)?{_CAP}[\w'’-]*){{0,2}})"
)
_LABEL_NAME = re.compile(
    r"\b(?P<title>(?:patient\s+)?name|surname|forename|first\s+name|last\s+name)\s*:\s*"
    rf"(?P<value>{_CAP}[\w'’-]*(?:\s+{_CAP}[\w'’-]*){{0,2}})",
    re.IGNORECASE,
)
#: Words after which a capitalised word is a person's name: relationships, care roles, contact phrases.
_RELATIONS = (
    r"wife|husband|spouse|partner|fianc[ée]e?|girlfriend|boyfriend|son|daughter|(?:step)?(?:mother|father)|"
    r"mum|mom|dad|parents?|brother|sister|sibling|(?:grand)(?:son|daughter|mother|father|child|parent)|"
    r"(?:son|daughter|mother|father|brother|sister)-in-law|aunt|uncle|niece|nephew|cousin|friend|"
    r"neighbou?r|carer|caregiver|guardian|next\s+of\s+kin|nok|relative"
)
_ROLES = (
    r"gp|consultant|registrar|surgeon|radiologist|physician|clinician|midwife|therapist|physio(?:therapist)?|"
    r"pharmacist|social\s+worker|interpreter|chaperone|attending|resident|(?:emergency\s+)?contact(?:\s+person)?|"
    r"informant|witness"
)
_CONTACTS = (
    r"seen\s+by|reviewed\s+by|examined\s+by|referred\s+by|reported\s+by|dictated\s+by|signed\s+by|"
    r"verified\s+by|transcribed\s+by|accompanied\s+by|discussed\s+with|spoke\s+(?:with|to)|"
    r"spoken\s+(?:with|to)|called|phoned|cc"
)
_CUE = re.compile(
    rf"(?:\b(?:{_RELATIONS}|{_ROLES}|{_CONTACTS})(?:['’]s)?\b|\[ID\])"
    r"(?:\s*[:(,–—-]\s*|\s+(?:is|was|named|called)\s+|\s+)",
    re.IGNORECASE,
)
_NAME_BEFORE_RELATION = re.compile(
    rf"(?P<value>[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){{0,4}})"
    rf"(?=\s*(?:\(\s*(?:(?:his|her|their|the\s+patient['’]s)\s+)?(?:{_RELATIONS}|{_ROLES})\s*\)"
    rf"|,\s*(?:(?:his|her|their|the\s+patient['’]s)\s+)(?:{_RELATIONS})\b))",
    re.IGNORECASE,
)
_NAME_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_PARTICLES = frozenset("van von de der den del della di da du dos das le la ten ter bin ibn al el st".split())
#: Capitalised words that follow relationship and role words in notes without being names.
_NOT_NAMES = frozenset(
    """
    the a an this that these those he she they his her their it its we i you our patient pt mr mrs ms miss dr
    doctor prof professor nurse sister alive deceased died dead passed living healthy well unwell unknown
    none nil no not non yes present absent history hx type t1dm t2dm diabetes diabetic hypertension htn
    cancer ca carcinoma prostate breast bowel colon colorectal lung ovarian cervical skin melanoma
    leukaemia leukemia lymphoma heart cardiac coronary myocardial ischaemic ischemic stroke cva tia dementia
    alzheimer's alzheimers parkinson's parkinsons asthma copd epilepsy arthritis osteoporosis depression
    anxiety glaucoma thyroid kidney renal liver hepatic high low blood multiple chronic acute early late aged
    age adopted similar same also significant sudden admitted discharged seen reviewed presented presents
    referred transferred informed aware called phoned ward unit clinic hospital team department service room
    bay bed home today tomorrow yesterday monday tuesday wednesday thursday friday saturday sunday on at in
    with by for from and or but to of
    """.split()
)

#: Words of departments, services and practices: a capitalised run holding one names a place, not a person.
_INSTITUTIONAL = frozenset(
    """
    department dept service services team unit ward clinic clinics centre center hospital practice surgery
    medical health healthcare trust board nhs ambulance emergency radiology cardiology oncology neurology
    neurosurgery physiotherapy physio occupational therapy therapies pathology pharmacy haematology hematology
    microbiology virology orthopaedics orthopedics paediatrics pediatrics dermatology gastroenterology
    respiratory urology nephrology psychiatry psychology medicine nursing intensive critical care icu itu
    hdu a&e ed outpatients theatre theatres imaging laboratory lab speech language dietetics infection control
    palliative hospice community social maternity obstetrics gynaecology gynecology ophthalmology ent
    endocrinology rheumatology geriatrics stroke cancer diabetes sexual mental
    """.split()
)
#: Nouns after which a capitalised run is a condition ("Coeliac disease", "Bell's palsy"), not a person.
_CONDITION_NOUNS = frozenset(
    """
    disease diseases syndrome disorder arthritis cancer carcinoma sclerosis palsy lymphoma leukaemia leukemia
    dementia failure infection deficiency fever anaemia anemia dystrophy ataxia chorea neuropathy myopathy
    cardiomyopathy tumour tumor sarcoma melanoma fracture injury hernia ulcer colitis hepatitis nephritis
    thyroiditis encephalopathy phenomenon sign score scale classification criteria procedure operation
    """.split()
)

_LONG_NUMBER = re.compile(r"\b(?=[A-Za-z0-9-]*\d{5})[A-Za-z0-9][A-Za-z0-9-]{4,}\b")
_TOKEN = re.compile(r"[^\W_][\w'’.-]*[^\W_]|[^\W_]")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_REPEATED = re.compile(r"(\[(?:NAME|ID|DATE|PHONE|ADDRESS|EMAIL|URL)\])(?: +\1)+")


@dataclass(frozen=True)
class PatientIdentity:
    """What is known to identify one patient: name words (matched in any case) and literal phrases
    (addresses, phone numbers, e-mails, dates of birth) with the placeholder each becomes."""

    names: frozenset[str] = frozenset()
    phrases: tuple[tuple[str, Placeholder], ...] = ()


@dataclass
class ScrubResult:
    text: str
    counts: Counter = field(default_factory=Counter)


def _phrase_pattern(phrases: Iterable[tuple[str, Placeholder]]) -> re.Pattern | None:
    items = sorted({p.strip() for p, _ in phrases if len(p.strip()) >= 4}, key=len, reverse=True)
    if not items:
        return None
    return re.compile("|".join(re.escape(p) for p in items), re.IGNORECASE)


class NoteScrubber:
    """Replaces identifying spans of free text with typed placeholders (see the module docstring).

    ``names``: name words of everyone known to the cohort (patients, physicians, operators), replaced when
    capitalised. ``identifiers``: exact identifier values (patient and case IDs, MRNs, accession numbers),
    replaced as whole tokens in any case. ``protect``: spans left untouched (e.g. pseudonyms already put in).
    """

    def __init__(
        self, names: Iterable[str] = (), identifiers: Iterable[str] = (), protect: re.Pattern | None = None
    ) -> None:
        self.protect = protect
        self.names = frozenset(n.lower() for n in names if len(n) >= 2)
        self.identifiers = frozenset(i.strip().lower() for i in identifiers if len(i.strip()) >= 3)
        self._phrase_cache: dict[tuple, re.Pattern | None] = {}

    def scrub(self, text: str, patient: PatientIdentity | None = None) -> ScrubResult:
        counts: Counter = Counter()
        patient = patient or PatientIdentity()
        kept: list[str] = []
        if self.protect is not None:

            def hide(match: re.Match) -> str:
                kept.append(match.group(0))
                return f"\ue000{len(kept) - 1}\ue001"

            text = self.protect.sub(hide, text)

        def sub(pattern: re.Pattern, placeholder: Placeholder, value: str) -> str:
            def repl(match: re.Match) -> str:
                counts[placeholder.value] += 1
                return placeholder.value

            return pattern.sub(repl, value)

        text = sub(_EMAIL, Placeholder.EMAIL, text)
        text = sub(_URL, Placeholder.URL, text)
        text = self._phrases(text, patient, counts)
        text = _ID_LABEL.sub(lambda m: self._keep_label(m, Placeholder.ID, counts), text)
        text = self._tokens(text, counts)
        text = sub(_DATE, Placeholder.DATE, text)
        text = _PHONE.sub(lambda m: self._phone(m, counts), text)
        text = sub(_ADDRESS, Placeholder.ADDRESS, text)
        text = self._names(text, patient, counts)
        text = _TITLE_NAME.sub(lambda m: self._keep_label(m, Placeholder.NAME, counts), text)
        text = _LABEL_NAME.sub(lambda m: self._keep_label(m, Placeholder.NAME, counts), text)
        text = _cued_names(text, counts)
        text = sub(_LONG_NUMBER, Placeholder.ID, text)
        text = _REPEATED.sub(r"\1", text)
        if kept:
            text = re.sub("\ue000(\\d+)\ue001", lambda m: kept[int(m.group(1))], text)
        return ScrubResult(text, counts)

    # -- steps -----------------------------------------------------------------------------------------------
    def _phrases(self, text: str, patient: PatientIdentity, counts: Counter) -> str:
        if not patient.phrases:
            return text
        if patient.phrases not in self._phrase_cache:
            self._phrase_cache[patient.phrases] = _phrase_pattern(patient.phrases)
        pattern = self._phrase_cache[patient.phrases]
        if pattern is None:
            return text
        kinds = {p.strip().lower(): kind for p, kind in patient.phrases}

        def repl(match: re.Match) -> str:
            kind = kinds.get(match.group(0).lower(), Placeholder.ID)
            counts[kind.value] += 1
            return kind.value

        return pattern.sub(repl, text)

    @staticmethod
    def _keep_label(match: re.Match, placeholder: Placeholder, counts: Counter) -> str:
        """Replace the ``value`` group only, keeping the label ("MRN [ID]", "Dr [NAME]")."""
        value = match.group("value")
        if value.startswith("["):
            return match.group(0)
        counts[placeholder.value] += 1
        start = match.start("value") - match.start(0)
        return match.group(0)[:start] + placeholder.value

    def _tokens(self, text: str, counts: Counter) -> str:
        if not self.identifiers:
            return text

        def repl(match: re.Match) -> str:
            token = match.group(0)
            if token.lower() in self.identifiers:
                counts[Placeholder.ID.value] += 1
                return Placeholder.ID.value
            return token

        return _TOKEN.sub(repl, text)

    @staticmethod
    def _phone(match: re.Match, counts: Counter) -> str:
        value = match.group(0)
        if sum(c.isdigit() for c in value) < 9:
            return value
        counts[Placeholder.PHONE.value] += 1
        return Placeholder.PHONE.value

    def _names(self, text: str, patient: PatientIdentity, counts: Counter) -> str:
        own = patient.names
        if not own and not self.names:
            return text

        def repl(match: re.Match) -> str:
            word = match.group(0)
            base, suffix = word, ""
            if word[-2:].lower() in ("'s", "’s"):
                base, suffix = word[:-2], word[-2:]
            low = base.lower()
            if low in own or (low in self.names and base[0].isupper()):
                counts[Placeholder.NAME.value] += 1
                return Placeholder.NAME.value + suffix
            return word

        return _WORD.sub(repl, text)


def _is_name_word(word: str) -> bool:
    """Capitalised (not all capitals, unless an initial such as "J.") and not a common clinical word."""
    bare = word.rstrip(".")
    if not bare or not bare[0].isupper() or bare.lower() in _NOT_NAMES:
        return False
    return len(bare) == 1 or not bare.isupper()


def _name_run(words: list[str]) -> int:
    """How many of ``words``, from the first, form a name: up to four name words, with particles between."""
    taken = names = 0
    for i, word in enumerate(words):
        if names == 4:
            break
        if _is_name_word(word):
            taken, names = i + 1, names + 1
        elif names and word.lower() in _PARTICLES and i + 1 < len(words):
            continue
        else:
            break
    return taken


def _names_a_place_or_condition(text: str, words: list[str], end: int) -> bool:
    """A capitalised run that holds a department word ("Emergency Department", "Riverside Medical Practice")
    or is followed by a condition noun ("Coeliac disease", "Bell's palsy") names no person."""
    if any(w.rstrip(".").lower() in _INSTITUTIONAL for w in words):
        return True
    following = _NAME_WORD.match(text, end + 1) if text[end : end + 1] == " " else None
    return following is not None and following.group(0).rstrip(".,").lower() in _CONDITION_NOUNS


def _cued_names(text: str, counts: Counter) -> str:
    """Replace untitled names after a relationship, role or contact cue, or before "(wife)" and the like."""
    out: list[str] = []
    position = 0
    for cue in _CUE.finditer(text):
        if cue.start() < position:
            continue
        words = list(_NAME_WORD.finditer(text, cue.end(), min(len(text), cue.end() + 200)))
        run = []
        for word in words:  # the words must follow each other, separated by spaces only
            gap = text[(run[-1].end() if run else cue.end()) : word.start()]
            if gap.strip():
                break
            run.append(word)
        taken = _name_run([w.group(0) for w in run])
        if taken and not _names_a_place_or_condition(
            text, [w.group(0) for w in run[:taken]], run[taken - 1].end()
        ):
            end = run[taken - 1].end()
            if text[end - 1] == "." and len(run[taken - 1].group(0)) > 2:
                end -= 1  # a sentence's full stop, not an initial's
            out.append(text[position : run[0].start()] + Placeholder.NAME.value)
            counts[Placeholder.NAME.value] += 1
            position = end
    out.append(text[position:])
    text = "".join(out)

    def before(match: re.Match) -> str:
        words = match.group("value").split()
        kept = 0
        for word in reversed(words):
            if _is_name_word(word) or (kept and word.lower() in _PARTICLES):
                kept += 1
            else:
                break
        while kept and words[len(words) - kept].lower() in _PARTICLES:
            kept -= 1
        if not kept or any(w.rstrip(".").lower() in _INSTITUTIONAL for w in words[len(words) - kept :]):
            return match.group(0)
        counts[Placeholder.NAME.value] += 1
        head = match.group("value")
        cut = head.rfind(words[len(words) - kept]) if kept < len(words) else 0
        return head[:cut] + Placeholder.NAME.value

    return _NAME_BEFORE_RELATION.sub(before, text)


_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})((?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)$"
)


def shift_iso(value: str, days: int) -> str | None:
    """Shift an ISO 8601 date or date-time by whole ``days``, keeping its exact format (time of day, fraction,
    time zone); None when ``value`` is not ISO 8601."""
    match = _ISO.match(value.strip())
    if not match:
        return None
    try:
        day = dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
    return (day + dt.timedelta(days=days)).isoformat() + match.group(4)


__all__ = ["NoteScrubber", "PatientIdentity", "Placeholder", "ScrubResult", "shift_iso"]
