"""Typed validation issues: every problem found in a cohort has a reason code, a message and a file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    WARNING = "warning"  # the case is kept; the affected value/file may be dropped
    ERROR = "error"  # the case, or the affected modality of the case, cannot be used


class IssueCode(StrEnum):
    """Reason codes of the validation report. Each code has one meaning; see ``describe``."""

    # cohort / table level
    SCHEMA_VIOLATION = "SCHEMA_VIOLATION"
    DUPLICATE_CASE_ID = "DUPLICATE_CASE_ID"
    PATIENT_IN_TWO_SPLITS = "PATIENT_IN_TWO_SPLITS"
    LABEL_INVALID = "LABEL_INVALID"
    PATH_ESCAPES_COHORT = "PATH_ESCAPES_COHORT"
    UNKNOWN_CASE_ID = "UNKNOWN_CASE_ID"
    NO_USABLE_MODALITY = "NO_USABLE_MODALITY"
    FILE_NOT_REGULAR = "FILE_NOT_REGULAR"
    FILE_NOT_READ = "FILE_NOT_READ"
    # images
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"
    IMAGE_UNREADABLE = "IMAGE_UNREADABLE"
    IMAGE_FORMAT_UNKNOWN = "IMAGE_FORMAT_UNKNOWN"
    DICOM_INVALID = "DICOM_INVALID"
    DICOM_TRUNCATED = "DICOM_TRUNCATED"
    DICOM_NO_PIXEL_DATA = "DICOM_NO_PIXEL_DATA"
    DICOM_MIXED_SERIES = "DICOM_MIXED_SERIES"
    DICOM_GEOMETRY_MISSING = "DICOM_GEOMETRY_MISSING"
    DICOM_INCONSISTENT_GEOMETRY = "DICOM_INCONSISTENT_GEOMETRY"
    DICOM_UNSUPPORTED_IMAGE = "DICOM_UNSUPPORTED_IMAGE"
    TRANSFER_SYNTAX_UNSUPPORTED = "TRANSFER_SYNTAX_UNSUPPORTED"
    SLICE_SPACING_INCONSISTENT = "SLICE_SPACING_INCONSISTENT"
    DUPLICATE_SLICE_POSITION = "DUPLICATE_SLICE_POSITION"
    NIFTI_QFORM_SFORM_MISMATCH = "NIFTI_QFORM_SFORM_MISMATCH"
    NIFTI_INVALID = "NIFTI_INVALID"
    IMAGE_WRONG_DIMENSIONS = "IMAGE_WRONG_DIMENSIONS"
    # images fetched from a PACS (mmdx import dicomweb)
    DICOMWEB_REFERENCE_INVALID = "DICOMWEB_REFERENCE_INVALID"
    PACS_UNREACHABLE = "PACS_UNREACHABLE"
    SERIES_NOT_FOUND = "SERIES_NOT_FOUND"
    DICOMWEB_RETRIEVE_FAILED = "DICOMWEB_RETRIEVE_FAILED"
    # images against the preprocessing plan (mmdx.data.plan)
    IMAGE_FOV_MISMATCH = "IMAGE_FOV_MISMATCH"
    IMAGE_FOV_CROPPED = "IMAGE_FOV_CROPPED"
    IMAGE_DIMS_DROPPED = "IMAGE_DIMS_DROPPED"
    IMAGE_CENTRE_SLICE = "IMAGE_CENTRE_SLICE"
    IMAGE_INTENSITY_MISMATCH = "IMAGE_INTENSITY_MISMATCH"
    IMAGE_MODALITY_UNSEEN = "IMAGE_MODALITY_UNSEEN"
    # observations
    UNIT_UNKNOWN = "UNIT_UNKNOWN"
    VALUE_IMPLAUSIBLE = "VALUE_IMPLAUSIBLE"
    VALUE_NOT_NUMERIC = "VALUE_NOT_NUMERIC"
    CODE_UNKNOWN = "CODE_UNKNOWN"
    LOINC_CHECK_DIGIT = "LOINC_CHECK_DIGIT"
    LOINC_NOT_IN_CATALOGUE = "LOINC_NOT_IN_CATALOGUE"
    VALUE_CENSORED = "VALUE_CENSORED"
    VALUE_DECIMAL_COMMA = "VALUE_DECIMAL_COMMA"
    TIME_INVALID = "TIME_INVALID"
    # notes
    NOTE_MALFORMED = "NOTE_MALFORMED"
    NOTE_EMPTY = "NOTE_EMPTY"
    NOTE_LIMIT_EXCEEDED = "NOTE_LIMIT_EXCEEDED"
    NOTE_ENCODING_INVALID = "NOTE_ENCODING_INVALID"
    # index time: nothing recorded after the moment of prediction
    INDEX_TIME_INVALID = "INDEX_TIME_INVALID"
    AFTER_INDEX_TIME = "AFTER_INDEX_TIME"
    BEFORE_LOOKBACK_WINDOW = "BEFORE_LOOKBACK_WINDOW"
    UNDATED_WITH_INDEX_TIME = "UNDATED_WITH_INDEX_TIME"
    # importers: what a source held that could not become part of the cohort
    CASE_NOT_LINKABLE = "CASE_NOT_LINKABLE"
    PATIENT_NOT_FOUND = "PATIENT_NOT_FOUND"
    SOURCE_RECORD_INVALID = "SOURCE_RECORD_INVALID"
    SOURCE_SCHEMA_INVALID = "SOURCE_SCHEMA_INVALID"
    CONCEPT_UNKNOWN = "CONCEPT_UNKNOWN"
    UNIT_NOT_UCUM = "UNIT_NOT_UCUM"
    ATTACHMENT_NOT_TEXT = "ATTACHMENT_NOT_TEXT"
    SPLIT_UNKNOWN = "SPLIT_UNKNOWN"
    # ground truth of synthetic cohorts
    GROUND_TRUTH_INVALID = "GROUND_TRUTH_INVALID"


DESCRIPTIONS: dict[IssueCode, str] = {
    IssueCode.SCHEMA_VIOLATION: "a row or file does not match its JSON Schema",
    IssueCode.DUPLICATE_CASE_ID: "the same case_id appears on more than one row; all but the first are rejected",
    IssueCode.PATIENT_IN_TWO_SPLITS: "one patient's cases are assigned to different splits",
    IssueCode.LABEL_INVALID: "label is none of 0, 1, 0.0, 1.0, true, false or empty",
    IssueCode.PATH_ESCAPES_COHORT: "a path points outside the cohort directory",
    IssueCode.UNKNOWN_CASE_ID: "an observation or note refers to a case_id missing from the cases table",
    IssueCode.NO_USABLE_MODALITY: "after validation the case has no usable image, observation or note",
    IssueCode.FILE_NOT_REGULAR: "a cohort file (notes.jsonl, the observations table) is a folder or another "
    "non-regular file; it is not read",
    IssueCode.FILE_NOT_READ: "a file that looks like cohort data in a layout mmdx does not read (notes.csv: notes "
    "are read from notes.jsonl); it is not used",
    IssueCode.IMAGE_NOT_FOUND: "the image path does not exist",
    IssueCode.IMAGE_UNREADABLE: "the image file exists but cannot be read",
    IssueCode.IMAGE_FORMAT_UNKNOWN: "the image is neither DICOM nor NIfTI",
    IssueCode.DICOM_INVALID: "the file is not a valid DICOM dataset",
    IssueCode.DICOM_TRUNCATED: "the DICOM file ends before its pixel data is complete",
    IssueCode.DICOM_NO_PIXEL_DATA: "the DICOM dataset has no pixel data (e.g. a structured report or RT structure)",
    IssueCode.DICOM_MIXED_SERIES: "a DICOM folder holds slices of more than one series",
    IssueCode.DICOM_GEOMETRY_MISSING: "position or orientation tags needed to stack slices are missing",
    IssueCode.DICOM_INCONSISTENT_GEOMETRY: "slices of one series differ in orientation, size or pixel spacing",
    IssueCode.DICOM_UNSUPPORTED_IMAGE: "the pixel data is not a greyscale image mmdx can use (e.g. colour, multi-frame)",
    IssueCode.TRANSFER_SYNTAX_UNSUPPORTED: "no installed decoder handles the file's transfer syntax",
    IssueCode.SLICE_SPACING_INCONSISTENT: "the gaps between slices are not uniform (a slice is missing)",
    IssueCode.DUPLICATE_SLICE_POSITION: "two slices of one series share a position",
    IssueCode.NIFTI_QFORM_SFORM_MISMATCH: "the NIfTI qform and sform disagree about where the image is",
    IssueCode.NIFTI_INVALID: "the NIfTI header or data is invalid (e.g. the file, or what a .nii.gz decompresses "
    "to, holds less voxel data than the header declares)",
    IssueCode.IMAGE_WRONG_DIMENSIONS: "the image is not 2D or 3D as the cohort requires",
    IssueCode.DICOMWEB_REFERENCE_INVALID: "an image reference is not dicomweb:<StudyInstanceUID>/<SeriesInstanceUID>",
    IssueCode.PACS_UNREACHABLE: "the DICOMweb server could not be reached or refused the credentials; the series was not fetched",
    IssueCode.SERIES_NOT_FOUND: "the referenced study/series is not on the DICOMweb server, or has no instance",
    IssueCode.DICOMWEB_RETRIEVE_FAILED: "the DICOMweb server failed to deliver an instance of the series, or sent another series",
    IssueCode.IMAGE_FOV_MISMATCH: "the image covers less than half of the model grid: most of the model input is padding",
    IssueCode.IMAGE_FOV_CROPPED: "more than half of the image's field of view lies outside the model grid and is cropped",
    IssueCode.IMAGE_DIMS_DROPPED: "a 2D image in a cohort planned as 3D: the image is not used, the case keeps its other modalities",
    IssueCode.IMAGE_CENTRE_SLICE: "a volume in a cohort planned as 2D: the model sees its centre slice",
    IssueCode.IMAGE_INTENSITY_MISMATCH: "the intensity normalisation does not fit the image's modality or values (e.g. a HU window on MR)",
    IssueCode.IMAGE_MODALITY_UNSEEN: "the image's modality was not among the training images of the model",
    IssueCode.UNIT_UNKNOWN: "the unit is not among the feature's accepted units",
    IssueCode.VALUE_IMPLAUSIBLE: "the value, in canonical units, lies outside the feature's plausible range",
    IssueCode.VALUE_NOT_NUMERIC: "the value is not a number",
    IssueCode.CODE_UNKNOWN: "the code is neither a LOINC code nor a key of the feature catalogue",
    IssueCode.LOINC_CHECK_DIGIT: "the code looks like a LOINC code but its mod-10 check digit is wrong (a typo)",
    IssueCode.LOINC_NOT_IN_CATALOGUE: "a valid LOINC code that the feature catalogue does not list; the row is not used",
    IssueCode.VALUE_CENSORED: "a censored value ('<0.05', '>1000'): used at its limit, flagged",
    IssueCode.VALUE_DECIMAL_COMMA: "a value written with a decimal comma ('4,2'): read as 4.2 when unambiguous, else not used",
    IssueCode.TIME_INVALID: "the time is not ISO 8601",
    IssueCode.NOTE_MALFORMED: "a notes.jsonl line is not a JSON object with case_id and text",
    IssueCode.NOTE_EMPTY: "a note has no text",
    IssueCode.NOTE_LIMIT_EXCEEDED: "a notes.jsonl line is larger or more deeply nested than the limits of "
    "mmdx.data.json_limits; it is not parsed",
    IssueCode.NOTE_ENCODING_INVALID: "a notes.jsonl line is not valid UTF-8; it is not used (bad bytes are not "
    "replaced silently)",
    IssueCode.INDEX_TIME_INVALID: "the case's index_time is not an ISO 8601 date-time; without it nothing can be kept",
    IssueCode.AFTER_INDEX_TIME: (
        "an observation, note or image was recorded after the case's index_time (it would leak the future); excluded"
    ),
    IssueCode.BEFORE_LOOKBACK_WINDOW: (
        "an observation, note or image is older than the look-back window of its kind before the index_time; excluded"
    ),
    IssueCode.UNDATED_WITH_INDEX_TIME: (
        "the case has an index_time but the observation or note has no time, so it cannot be shown to precede it; "
        "excluded"
    ),
    IssueCode.CASE_NOT_LINKABLE: (
        "the case list gives neither an encounter_id nor an index_time, so no source record can be attached to the case"
    ),
    IssueCode.PATIENT_NOT_FOUND: "the case's patient_id does not occur in the source",
    IssueCode.SOURCE_RECORD_INVALID: (
        "a source record (FHIR resource, MEDS row, OMOP row) fails its standard's model or lacks a field mmdx needs"
    ),
    IssueCode.SOURCE_SCHEMA_INVALID: "a source file or table does not have the columns and types its standard requires",
    IssueCode.CONCEPT_UNKNOWN: "a source code or concept cannot be mapped to a LOINC code (no LOINC coding, concept 0 or missing)",
    IssueCode.UNIT_NOT_UCUM: "a value's unit is not given as a UCUM code, so its conversion is unknown",
    IssueCode.ATTACHMENT_NOT_TEXT: "a document's attachment is not inline plain text (e.g. a PDF or an external URL)",
    IssueCode.SPLIT_UNKNOWN: "the source's split name maps to none of train, val and test; mmdx assigns one",
    IssueCode.GROUND_TRUTH_INVALID: "a ground_truth/ file or record does not match its JSON Schema; it is skipped",
}


def describe(code: IssueCode | str) -> str:
    """One-line meaning of a reason code."""
    return DESCRIPTIONS[IssueCode(code)]


@dataclass(frozen=True)
class Issue:
    """One problem found in a cohort. ``file`` is relative to the cohort; ``row`` is 1-based where known."""

    code: IssueCode
    message: str
    file: str | None = None
    severity: Severity = Severity.ERROR
    row: int | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["code"] = str(self.code)
        out["severity"] = str(self.severity)
        return out


class ImageReadError(Exception):
    """Raised by the image readers; carries a typed :class:`Issue` so validation can report it."""

    def __init__(self, code: IssueCode, message: str, file: str | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" ({file})" if file else ""))
        self.issue = Issue(code=code, message=message, file=file)
