"""De-identification of one DICOM dataset: the Basic Profile table applied recursively, UIDs remapped with the
key, dates shifted per patient, private tags removed unless allowlisted, and burned-in text quarantined.

What happens to each data element, in order:

1. **private** elements (odd group) are removed, with their creator, unless ``(group, creator, element)`` is
   on the allowlist (empty by default: ``--keep-private 0019,GEMS_ACQU_01,10``);
2. a few attributes are **replaced** so that the headers agree with the de-identified cases table:
   Patient ID and Patient's Name become the patient's pseudonym; Patient's Birth Date and Birth Time are
   emptied/removed whatever the date option; with the Retain Patient Characteristics option (on by default,
   since the cases table keeps age and sex) age, sex, size and weight are kept, ages above 89 written 090Y;
3. with the **Retain Longitudinal Temporal Information with Modified Dates** option (on by default) every
   date (DA) and date-time (DT) is shifted by the patient's offset (−365 … −1 days, from the key) instead of
   being emptied or removed; times of day (TM) are kept, so intervals within a patient survive exactly;
4. an attribute listed in the **Basic Profile** (:mod:`mmdx.deid.profile`) gets its action: removed,
   emptied, replaced by a dummy, or its UIDs remapped (sequences of UID references are kept and walked);
5. an attribute the table does not list is kept, except that any **person name** (PN) is emptied, a **UID**
   outside the DICOM root that is not a class or syntax UID is remapped, and a public element of unknown
   VR (UN, possibly free text) is removed;
6. **sequences** that are kept are walked item by item with the same rules.

UIDs become ``2.25.<keyed hash>`` (see :meth:`mmdx.deid.key.DeidKey.uid`): the same UID maps to the same new
UID in every file and every run with the same key, so series, studies and references stay intact.

A file is **quarantined** (not written; the reason recorded) when its Burned In Annotation is ``YES``, when
it is absent for a modality that often burns text into the pixels (US, SC, OT by default), or when it marks
recognisable visual features.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydicom import dcmread, dcmwrite
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence

from mmdx.deid.key import DeidKey
from mmdx.deid.profile import PATIENT_CHARACTERISTICS, Action, ProfileTable, resolve_action

DICOM_ROOT = "1.2.840.10008."
PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
BIRTH_DATE, BIRTH_TIME = 0x00100030, 0x00100032
PATIENT_AGE = 0x00101010
#: attributes whose values identify the patient or the encounter; collected so notes can be scrubbed of them
IDENTIFIER_TAGS = frozenset(
    {
        0x00100020,  # Patient ID
        0x00101000,  # Other Patient IDs
        0x00080050,  # Accession Number
        0x00200010,  # Study ID
        0x00401001,  # Requested Procedure ID
        0x00400009,  # Scheduled Procedure Step ID
        0x00400253,  # Performed Procedure Step ID
        0x00380010,  # Admission ID
        0x00380060,  # Service Episode ID
        0x00101090,  # Medical Record Locator
        0x00402016,  # Placer Order Number
        0x00402017,  # Filler Order Number
        0x00120040,  # Clinical Trial Subject ID
    }
)
#: attributes describing the patient's address and phone: collected as phrases to scrub from notes
CONTACT_TAGS = frozenset({0x00101040, 0x00102154, 0x00401102, 0x00401103, 0x00080081})
#: file meta information that names the sending or receiving system
META_REMOVE = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028, 0x00020100, 0x00020102)
#: modalities that often carry burned-in patient details in their pixels
RISKY_MODALITIES = frozenset({"US", "SC", "OT"})

DEID_METHOD_CODES = {
    "113100": "Basic Application Confidentiality Profile",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113111": "Retain Safe Private Option",
}


class QuarantineReason(StrEnum):
    """Why a file was held back instead of written. Each code has one meaning; see ``QUARANTINE_DESCRIPTIONS``."""

    BURNED_IN_ANNOTATION = "BURNED_IN_ANNOTATION"
    BURNED_IN_ANNOTATION_UNKNOWN = "BURNED_IN_ANNOTATION_UNKNOWN"
    RECOGNIZABLE_VISUAL_FEATURES = "RECOGNIZABLE_VISUAL_FEATURES"
    DICOM_UNREADABLE = "DICOM_UNREADABLE"
    DICOM_TRUNCATED = "DICOM_TRUNCATED"
    NOT_DICOM = "NOT_DICOM"
    NIFTI_UNSUPPORTED = "NIFTI_UNSUPPORTED"


QUARANTINE_DESCRIPTIONS: dict[QuarantineReason, str] = {
    QuarantineReason.BURNED_IN_ANNOTATION: "Burned In Annotation is YES: identifying text is in the pixels",
    QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN: (
        "Burned In Annotation is absent for a modality that often burns text into the image (US, SC, OT)"
    ),
    QuarantineReason.RECOGNIZABLE_VISUAL_FEATURES: "Recognizable Visual Features is YES (e.g. a face)",
    QuarantineReason.DICOM_UNREADABLE: "the file could not be parsed, so it cannot be checked or cleaned",
    QuarantineReason.DICOM_TRUNCATED: "the pixel data is shorter than its rows, columns and bits require",
    QuarantineReason.NOT_DICOM: "a file in a DICOM series folder that is not DICOM",
    QuarantineReason.NIFTI_UNSUPPORTED: "not a single-file NIfTI-1 image, whose header mmdx can clean",
}


@dataclass(frozen=True)
class DicomOptions:
    """How DICOM files are de-identified.

    ``private_allowlist``: ``(group, private creator, element offset 0x00-0xFF)`` triples of private
    attributes known to be safe (the Retain Safe Private option); everything else private is removed.
    ``shift_dates``: the Retain Longitudinal Temporal Information with Modified Dates option.
    ``keep_patient_characteristics``: the Retain Patient Characteristics option (age, sex, size, weight).
    ``quarantine_modalities``: modalities whose files are held back when Burned In Annotation is absent.
    ``max_age``: ages above are written as ``max_age + 1`` years (HIPAA Safe Harbor groups ages over 89).
    """

    private_allowlist: frozenset[tuple[int, str, int]] = frozenset()
    shift_dates: bool = True
    keep_patient_characteristics: bool = True
    quarantine_modalities: frozenset[str] = RISKY_MODALITIES
    max_age: int = 89

    def method_codes(self) -> list[str]:
        codes = ["113100"]
        if self.shift_dates:
            codes.append("113107")
        if self.keep_patient_characteristics:
            codes.append("113108")
        if self.private_allowlist:
            codes.append("113111")
        return codes


def parse_private_allowlist(entries: list[str]) -> frozenset[tuple[int, str, int]]:
    """Parse ``GGGG,CREATOR,EE`` strings (hex group, private creator, hex element offset)."""
    from mmdx.errors import MmdxError

    out = set()
    for entry in entries:
        parts = [p.strip() for p in entry.split(",")]
        try:
            if len(parts) != 3:
                raise ValueError
            group, creator, offset = int(parts[0], 16), parts[1], int(parts[2], 16)
            if group % 2 == 0 or not creator or not 0 <= offset <= 0xFF:
                raise ValueError
        except ValueError:
            raise MmdxError(
                f"--keep-private {entry!r}: expected GGGG,CREATOR,EE with an odd hexadecimal group, the private "
                "creator string and the element offset in hex, e.g. 0019,GEMS_ACQU_01,10"
            ) from None
        out.add((group, creator, offset))
    return frozenset(out)


@dataclass(frozen=True)
class PatientContext:
    """What the cohort decided for the file's patient: the pseudonym and the date shift in days."""

    pseudonym: str
    day_shift: int


@dataclass
class DicomResult:
    """The outcome for one dataset. ``names``: person-name components found (upper case as written);
    ``identifiers``: identifier values found; ``phrases``: addresses and phone numbers found; ``actions``:
    how many elements got each treatment; ``attributes``: ``{attribute name: action}`` counts."""

    quarantine: QuarantineReason | None = None
    names: set[str] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)
    phrases: set[str] = field(default_factory=set)
    actions: Counter = field(default_factory=Counter)
    attributes: Counter = field(default_factory=Counter)

    def merge(self, other: DicomResult) -> None:
        self.names |= other.names
        self.identifiers |= other.identifiers
        self.phrases |= other.phrases
        self.actions.update(other.actions)
        self.attributes.update(other.attributes)


_NAME_SPLIT = re.compile(r"[\^=\s,]+")
_NOT_NAMES = frozenset({"DR", "DR.", "MD", "PHD", "MR", "MRS", "MS", "MISS", "PROF", "JR", "SR", "II", "III"})


def name_components(person_name: str) -> set[str]:
    """The words of a DICOM person name (``Family^Given^Middle^Prefix^Suffix``), titles left out."""
    words = {w.strip(".") for w in _NAME_SPLIT.split(person_name or "")}
    return {w for w in words if len(w) >= 2 and w.upper() not in _NOT_NAMES and not w.isdigit()}


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (``YYYYMMDD``, or a range ``A-B``) by ``days``; None when it is not a valid date."""
    parts = value.strip().split("-")
    out = []
    for part in parts:
        if part == "" and len(parts) == 2:  # open range
            out.append("")
            continue
        try:
            day = dt.datetime.strptime(part, "%Y%m%d").date()
        except ValueError:
            return None
        out.append((day + dt.timedelta(days=days)).strftime("%Y%m%d"))
    return "-".join(out)


def shift_dt(value: str, days: int) -> str | None:
    """Shift a DT value (``YYYYMMDD[HHMMSS[.F]][&ZZXX]``) by ``days``; None when it has no full date."""
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    shifted = shift_da(text[:8], days)
    return None if shifted is None else shifted + text[8:]


def _dummy(vr: str, original) -> object:
    if vr in ("LO", "SH", "PN", "LT", "ST", "UT", "UC", "AE", "CS"):
        return "ANONYMOUS"[: 16 if vr in ("SH", "AE", "CS") else 64]
    if vr == "DA":
        return "19000101"
    if vr == "DT":
        return "19000101000000"
    if vr == "TM":
        return "000000"
    if vr == "AS":
        return "000Y"
    if vr in ("DS", "IS"):
        return "0"
    if vr in ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"):
        return 0
    if vr == "SQ":
        return Sequence([Dataset()])
    return None


class DicomDeidentifier:
    """Applies the Basic Profile with the options above to datasets; stateless apart from its settings."""

    def __init__(self, key: DeidKey, options: DicomOptions | None = None) -> None:
        self.key = key
        self.options = options or DicomOptions()
        self.table = ProfileTable()

    # -- quarantine --------------------------------------------------------------------------------------
    def quarantine_reason(self, ds: Dataset) -> QuarantineReason | None:
        """Why ``ds`` must not be released as it is, or None."""
        burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
        if burned == "YES":
            return QuarantineReason.BURNED_IN_ANNOTATION
        if str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper() == "YES":
            return QuarantineReason.RECOGNIZABLE_VISUAL_FEATURES
        modality = str(ds.get("Modality", "") or "").strip().upper()
        if not burned and modality in self.options.quarantine_modalities:
            return QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN
        return None

    # -- the walk ------------------------------------------------------------------------------------------
    def deidentify(self, ds: Dataset, patient: PatientContext) -> DicomResult:
        """De-identify ``ds`` in place (file meta included). Check :meth:`quarantine_reason` first."""
        result = DicomResult()
        self._walk(ds, patient, result)
        ds.PatientIdentityRemoved = "YES"
        codes = self.options.method_codes()
        ds.DeidentificationMethod = [DEID_METHOD_CODES[c] for c in codes]
        items = []
        for code in codes:
            item = Dataset()
            item.CodeValue = code
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = DEID_METHOD_CODES[code]
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.options.shift_dates else "REMOVED"
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            for tag in META_REMOVE:
                if tag in meta:
                    del meta[tag]
                    result.actions["removed"] += 1
            if "SOPInstanceUID" in ds:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if hasattr(ds, "preamble") and ds.preamble is not None:
            ds.preamble = b"\0" * 128  # a dual-format preamble can hold a whole TIFF header
        return result

    def _walk(self, ds: Dataset, patient: PatientContext, result: DicomResult) -> None:
        keep_private = self._private_to_keep(ds)
        for elem in list(ds):
            tag = int(elem.tag)
            if elem.tag.is_private:
                if tag in keep_private:
                    result.actions["private_kept"] += 1
                    if elem.VR == "SQ":
                        for item in elem.value or []:
                            self._walk(item, patient, result)
                else:
                    del ds[tag]
                    result.actions["private_removed"] += 1
                continue
            if elem.tag.element == 0x0000:  # group lengths are recomputed or unnecessary
                del ds[tag]
                continue
            self._collect(elem, tag, result)
            self._apply(ds, elem, tag, patient, result)

    def _private_to_keep(self, ds: Dataset) -> set[int]:
        allow = self.options.private_allowlist
        if not allow:
            return set()
        keep: set[int] = set()
        for elem in ds:
            if not elem.tag.is_private or elem.tag.element < 0x1000:
                continue
            group, block = elem.tag.group, elem.tag.element >> 8
            creator_tag = (group << 16) | block
            creator = ds.get(creator_tag)
            name = str(creator.value).strip() if creator is not None else ""
            if (group, name, elem.tag.element & 0xFF) in allow:
                keep.update({int(elem.tag), creator_tag})
        return keep

    def _collect(self, elem: DataElement, tag: int, result: DicomResult) -> None:
        """Remember identifying values (before they are removed) so notes can be scrubbed of them."""
        if elem.value in (None, "", b""):
            return
        values = elem.value if elem.VM > 1 else [elem.value]
        if elem.VR == "PN":
            for v in values:
                result.names |= name_components(str(v))
        elif tag in IDENTIFIER_TAGS:
            result.identifiers |= {str(v).strip() for v in values if str(v).strip()}
        elif tag in CONTACT_TAGS:
            result.phrases |= {str(v).strip() for v in values if len(str(v).strip()) >= 4}

    def _collect_items(self, elem: DataElement, result: DicomResult) -> None:
        for item in elem.value or []:
            for inner in item:
                if inner.tag.is_private:
                    continue
                if inner.VR == "SQ":
                    self._collect_items(inner, result)
                else:
                    self._collect(inner, int(inner.tag), result)

    def _apply(
        self, ds: Dataset, elem: DataElement, tag: int, patient: PatientContext, result: DicomResult
    ) -> None:
        vr = elem.VR
        name = self._name(tag)
        # 2. attributes replaced so the headers match the cases table
        if tag in (PATIENT_ID, PATIENT_NAME):
            elem.value = patient.pseudonym
            result.actions["replaced"] += 1
            result.attributes[f"{name}: pseudonym"] += 1
            return
        if tag == BIRTH_DATE:
            elem.value = None
            result.actions["emptied"] += 1
            result.attributes[f"{name}: Z"] += 1
            return
        if self.options.keep_patient_characteristics and tag in PATIENT_CHARACTERISTICS:
            if tag == PATIENT_AGE:
                self._cap_age(elem, result)
            return
        rule = self.table.rule(tag)
        # 3. dates shifted (birth time stays removed: it is part of the birth date)
        if self.options.shift_dates and vr in ("DA", "DT") and tag != BIRTH_TIME:
            self._shift(ds, elem, tag, patient.day_shift, result, name)
            return
        if self.options.shift_dates and vr == "TM" and tag != BIRTH_TIME:
            return  # whole-day shifts leave the time of day unchanged
        # 4. the Basic Profile
        if rule is not None:
            action = resolve_action(rule.code, vr)
            result.attributes[f"{name}: {rule.code}"] += 1
            if vr == "SQ" and action in (Action.REMOVE, Action.EMPTY, Action.DUMMY):
                self._collect_items(elem, result)  # names and IDs inside count for scrubbing notes
            if action is Action.REMOVE:
                del ds[tag]
                result.actions["removed"] += 1
            elif action is Action.EMPTY:
                elem.value = Sequence() if vr == "SQ" else None
                result.actions["emptied"] += 1
            elif action is Action.DUMMY:
                if vr == "UI":
                    self._remap(elem, result)
                else:
                    elem.value = _dummy(vr, elem.value)
                    result.actions["dummy"] += 1
            elif action is Action.REMAP_UID:
                if vr == "SQ":
                    self._walk_items(elem, patient, result)
                else:
                    self._remap(elem, result)
            elif vr == "SQ":  # KEEP
                self._walk_items(elem, patient, result)
            return
        # 5. attributes the table does not list
        if vr == "SQ":
            self._walk_items(elem, patient, result)
        elif vr == "PN":
            if elem.value not in (None, ""):
                elem.value = None
                result.actions["emptied"] += 1
                result.attributes[f"{name}: person name"] += 1
        elif vr == "UI":
            if self._is_instance_uid(tag, elem):
                self._remap(elem, result)
        elif vr == "UN":
            del ds[tag]
            result.actions["removed"] += 1
            result.attributes[f"{name}: unknown VR"] += 1
        elif vr in ("DA", "DT") and elem.value not in (None, ""):
            elem.value = None  # dates without the shift option: no date survives
            result.actions["emptied"] += 1

    @staticmethod
    def _name(tag: int) -> str:
        return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"

    def _walk_items(self, elem: DataElement, patient: PatientContext, result: DicomResult) -> None:
        for item in elem.value or []:
            self._walk(item, patient, result)

    @staticmethod
    def _is_instance_uid(tag: int, elem: DataElement) -> bool:
        keyword = keyword_for_tag(tag) or ""
        if keyword.endswith(("ClassUID", "SyntaxUID")) or keyword in ("CodingSchemeUID", "ContextUID"):
            return False
        values = elem.value if elem.VM > 1 else [elem.value]
        return any(v and not str(v).startswith(DICOM_ROOT) for v in values)

    def _remap(self, elem: DataElement, result: DicomResult) -> None:
        if elem.value in (None, ""):
            return
        if elem.VM > 1:
            elem.value = [self._map_uid(str(v)) for v in elem.value]
        else:
            elem.value = self._map_uid(str(elem.value))
        result.actions["uid_remapped"] += 1

    def _map_uid(self, uid: str) -> str:
        uid = uid.strip().rstrip("\0")
        return uid if uid.startswith(DICOM_ROOT) else self.key.uid(uid)

    def _shift(
        self, ds: Dataset, elem: DataElement, tag: int, days: int, result: DicomResult, name: str
    ) -> None:
        if elem.value in (None, ""):
            return
        shift = shift_da if elem.VR == "DA" else shift_dt
        values = elem.value if elem.VM > 1 else [elem.value]
        shifted = [shift(str(v), days) for v in values]
        if any(s is None for s in shifted):
            elem.value = None  # an unparseable date cannot be shifted, so it cannot be kept
            result.actions["emptied"] += 1
            result.attributes[f"{name}: invalid date"] += 1
            return
        elem.value = shifted if elem.VM > 1 else shifted[0]
        result.actions["date_shifted"] += 1
        result.attributes[f"{name}: shifted"] += 1

    def _cap_age(self, elem: DataElement, result: DicomResult) -> None:
        text = str(elem.value or "").strip().upper()
        if len(text) == 4 and text[:3].isdigit() and text[3] == "Y" and int(text[:3]) > self.options.max_age:
            elem.value = f"{self.options.max_age + 1:03d}Y"
            result.actions["age_capped"] += 1

    # -- files -----------------------------------------------------------------------------------------------
    def deidentify_file(self, src: Path, dst: Path, patient: PatientContext) -> DicomResult:
        """Read ``src``, de-identify it and write ``dst``; a quarantined or unreadable file is not written."""
        try:
            ds = dcmread(str(src))
        except InvalidDicomError:
            return DicomResult(quarantine=QuarantineReason.NOT_DICOM)
        except Exception:  # noqa: BLE001 -- any parse failure means the file cannot be checked
            return DicomResult(quarantine=QuarantineReason.DICOM_UNREADABLE)
        reason = self.quarantine_reason(ds) or _truncation(ds)
        if reason is not None:
            return DicomResult(quarantine=reason)
        try:
            result = self.deidentify(ds, patient)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dcmwrite(str(dst), ds, enforce_file_format=True)
        except Exception:  # noqa: BLE001 -- e.g. a value pydicom cannot encode: hold the file back
            if dst.exists():
                dst.unlink()
            return DicomResult(quarantine=QuarantineReason.DICOM_UNREADABLE)
        return result


def _truncation(ds: Dataset) -> QuarantineReason | None:
    """DICOM_TRUNCATED when native pixel data is shorter than the image it describes (a cut-off file would
    otherwise be written back as if it were whole)."""
    if "PixelData" not in ds:
        has_other = "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
        # an image header whose pixel data never arrives: the file was cut before the pixel data element
        sop_class = ds.get("SOPClassUID")
        is_image = "Rows" in ds or (
            sop_class is not None and "Image Storage" in getattr(sop_class, "name", "")
        )
        return QuarantineReason.DICOM_TRUNCATED if is_image and not has_other else None
    if getattr(ds, "file_meta", None) is None:
        return None
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax.is_compressed:
        return None
    try:
        expected = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel", 1) or 1)
            * int(ds.get("NumberOfFrames", 1) or 1)
            * int(ds.BitsAllocated)
            // 8
        )
    except (AttributeError, TypeError, ValueError):
        return None
    return QuarantineReason.DICOM_TRUNCATED if len(ds.PixelData or b"") < expected else None


__all__ = [
    "DicomDeidentifier",
    "DicomOptions",
    "DicomResult",
    "PatientContext",
    "QUARANTINE_DESCRIPTIONS",
    "QuarantineReason",
    "name_components",
    "parse_private_allowlist",
    "shift_da",
    "shift_dt",
]
