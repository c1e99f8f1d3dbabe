"""Patient privacy: de-identifying a cohort before it leaves its source, and proving nothing identifying is left.

``profile``  the DICOM PS3.15 Annex E Basic Profile action table (tag, name, action code)
``key``      the secret key and the keyed pseudonyms, UIDs and per-patient date shifts derived from it
``dicom``    one DICOM dataset de-identified recursively; quarantine of burned-in text
``text``     scrubbing notes and other free text into typed placeholders
``cohort``   a whole cohort directory de-identified into a new one, with a report
``canary``   scanning outputs for the canary values of an identified synthetic cohort
"""

from mmdx.deid.canary import find_canaries, load_canaries
from mmdx.deid.cohort import DeidOptions, DeidReport, deidentify_cohort
from mmdx.deid.dicom import DicomDeidentifier, DicomOptions, QuarantineReason
from mmdx.deid.key import DeidKey, load_or_create_key
from mmdx.deid.text import NoteScrubber, Placeholder

__all__ = [
    "DeidKey",
    "DeidOptions",
    "DeidReport",
    "DicomDeidentifier",
    "DicomOptions",
    "NoteScrubber",
    "Placeholder",
    "QuarantineReason",
    "deidentify_cohort",
    "find_canaries",
    "load_canaries",
    "load_or_create_key",
]
