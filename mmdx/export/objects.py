"""The DICOM objects ``mmdx export`` writes for one explained case, built with highdicom.

* **Parametric Map** (float32 frames on the source grid): the image attribution, in calibrated-logit units
  per pixel, with a Real World Value Mapping saying so and a symmetric LINEAR_EXACT window around 0.
* **Segmentation**, FRACTIONAL, on request (``segmentation=True``): for viewers that show SEG but not
  Parametric Maps, the positive attribution (evidence for the positive class) divided by the case's largest
  positive attribution, so 1 marks the pixels that pushed the prediction up most. DICOM lets a fractional
  segment say PROBABILITY or OCCUPANCY only; it says PROBABILITY, and the segment label and description say
  that the value is a relative attribution, not a probability.
* **Comprehensive 3D SR** (TID 1500 measurement report): the calibrated probability, the operating
  threshold and the decision at it (SNOMED CT Positive/Negative), the modality Shapley values with their
  base and full values, and the algorithm identification (model name, model version, SHA-256 of the bundle's
  manifest, explanation version). The source images are its evidence and the Parametric Map its other
  evidence.
* **Secondary Capture**, on request (``overlay=True``): the slice with the largest positive attribution as
  an RGB picture, the image in its window with the attribution in red (positive) and blue (negative), for
  viewers that render neither.

Every object carries Content Qualification RESEARCH and a series description ending in "decision support,
not for diagnosis alone". Patient and study attributes are copied from the source images by highdicom (the
cohort's pseudonymous identifiers); nothing identifying is added: no institution, operator or physician.
UIDs are derived from the source series, the explanation version and the object kind, so exporting the same
explanation again gives the same UIDs and a PACS replaces the objects instead of duplicating them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from mmdx.errors import MmdxError
from mmdx.export.source import CaseSource
from mmdx.keys import MODALITIES

INSTALL_HINT = "pip install highdicom (it comes with mmdx: pip install -e . or 'make setup')"
CONTENT_QUALIFICATION = "RESEARCH"
DISCLAIMER = "decision support, not for diagnosis alone"
MANUFACTURER = "mmdx"
#: Private coding scheme of the concepts DICOM and SNOMED CT have no code for (the 99 prefix is reserved
#: for local schemes by PS3.16).
SCHEME = "99MMDX"


class ObjectKind(StrEnum):
    """The kinds of object written per case, with their series numbers below."""

    PARAMETRIC_MAP = "parametric_map"
    SEGMENTATION = "segmentation"
    STRUCTURED_REPORT = "structured_report"
    SECONDARY_CAPTURE = "secondary_capture"


SERIES_NUMBERS = {
    ObjectKind.PARAMETRIC_MAP: 901,
    ObjectKind.SEGMENTATION: 902,
    ObjectKind.STRUCTURED_REPORT: 903,
    ObjectKind.SECONDARY_CAPTURE: 904,
}
SERIES_DESCRIPTIONS = {
    ObjectKind.PARAMETRIC_MAP: f"mmdx attribution - {DISCLAIMER}",
    ObjectKind.SEGMENTATION: f"mmdx attribution SEG - {DISCLAIMER}",
    ObjectKind.STRUCTURED_REPORT: f"mmdx result - {DISCLAIMER}",
    ObjectKind.SECONDARY_CAPTURE: f"mmdx overlay - {DISCLAIMER}",
}


@dataclass(frozen=True)
class ModelIdentity:
    """What the exported objects say about the model that produced them.

    ``name``: the run's config name; ``version``: the model version (checksum of its weights);
    ``bundle_sha256``: SHA-256 of the bundle's manifest (which holds the SHA-256 of every bundle file);
    ``software_version``: the mmdx version; ``explanation_version``: the explanation's version hash.
    """

    name: str
    version: str
    bundle_sha256: str
    software_version: str
    explanation_version: str
    explanation_method: str


@dataclass(frozen=True)
class ExportedObject:
    kind: ObjectKind
    dataset: Dataset

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)


def _highdicom():
    try:
        import highdicom
    except ModuleNotFoundError:
        raise MmdxError(f"writing DICOM results needs the package highdicom: {INSTALL_HINT}") from None
    return highdicom


def derived_uid(*parts: str) -> str:
    """A ``2.25.`` UID (a 128-bit integer, as for UUID-derived UIDs) that is a function of ``parts``."""
    digest = hashlib.sha256("\x1f".join(["mmdx-export", *parts]).encode()).hexdigest()
    return f"2.25.{int(digest[:32], 16)}"


def _code(value: str, meaning: str, scheme: str = SCHEME):
    from highdicom.sr.coding import CodedConcept

    return CodedConcept(value, scheme, meaning)


def _label(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "~"


def _finish(dataset: Dataset, kind: ObjectKind) -> Dataset:
    dataset.ContentQualification = CONTENT_QUALIFICATION
    dataset.SeriesDescription = SERIES_DESCRIPTIONS[kind]
    return dataset


def _equipment(identity: ModelIdentity) -> dict[str, Any]:
    return {
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": _label(identity.name),
        "software_versions": _label(identity.software_version),
        "device_serial_number": identity.version,
    }


#: Image attribution methods whose maps are in calibrated-logit units (the others, class-activation maps and
#: squared gradients, are relative).
LOGIT_UNIT_METHODS = frozenset({"integrated_gradients", "occlusion", "gaussian_occlusion", "gradient_shap"})


def parametric_map(source: CaseSource, identity: ModelIdentity) -> ExportedObject:
    """The attribution as a float32 Parametric Map on the source grid."""
    hd = _highdicom()
    frames = source.frames.astype(np.float32)
    finite = frames[np.isfinite(frames)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    if high <= low:
        high = low + 1.0  # a constant map still needs a range
    half_width = float(np.abs(finite).max()) if finite.size else 0.0
    in_logits = identity.explanation_method in LOGIT_UNIT_METHODS
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="ATTRIBUTION",
        lut_explanation=_label(
            f"{identity.explanation_method} attribution to the calibrated logit"
            if in_logits
            else f"{identity.explanation_method} relevance for the calibrated logit (relative units)"
        ),
        unit=_code("{logit}", "logit", "UCUM") if in_logits else _code("1", "no units", "UCUM"),
        value_range=(low, high),
        slope=1.0,
        intercept=0.0,
        quantity_definition=_code("ATTRIB", "Attribution to the calibrated logit"),
    )
    window = hd.VOILUTTransformation(
        window_center=0.0,
        window_width=2.0 * half_width if half_width > 0 else 1.0,
        window_explanation="symmetric about zero",
        voi_lut_function="LINEAR_EXACT",
    )
    series_uid = str(source.datasets[0].SeriesInstanceUID)
    kind = ObjectKind.PARAMETRIC_MAP
    dataset = hd.pm.ParametricMap(
        source_images=source.datasets,
        pixel_array=frames,
        series_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "series"),
        series_number=SERIES_NUMBERS[kind],
        sop_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "instance"),
        instance_number=1,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[window],
        content_label="ATTRIBUTION",
        content_description=_label(f"mmdx {identity.explanation_method} attribution map"),
        content_qualification=CONTENT_QUALIFICATION,
        **_equipment(identity),
    )
    _set_laterality(dataset, source)
    return ExportedObject(kind, _finish(dataset, kind))


def _set_laterality(dataset: Dataset, source: CaseSource) -> None:
    # General Series Laterality is type 2C (required for a paired body part when no image or frame laterality
    # is given). The source's value is copied; when it has none, an empty value says "unknown", which
    # dciodvfy accepts for these IODs with a warning, whereas leaving it out is an error for it.
    dataset.Laterality = str(source.datasets[0].get("Laterality", "") or "")


def fractional_segmentation(source: CaseSource, identity: ModelIdentity) -> ExportedObject:
    """The positive attribution relative to its maximum as a FRACTIONAL Segmentation."""
    hd = _highdicom()
    positive = np.clip(np.nan_to_num(source.frames.astype(np.float32)), 0.0, None)
    peak = float(positive.max())
    relative = positive / peak if peak > 0 else positive
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_label(f"mmdx {identity.name}"),
        family=_code("ATTRIBUTION", "Model attribution"),
        version=identity.version,
        parameters={"bundle_sha256": identity.bundle_sha256, "method": identity.explanation_method},
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="relative positive attribution",
        segmented_property_category=_code("ATTRIBUTION", "Model attribution"),
        segmented_property_type=_code("ATTRIB-POS", "Attribution towards the positive class"),
        algorithm_type="AUTOMATIC",
        algorithm_identification=algorithm,
    )
    series_uid = str(source.datasets[0].SeriesInstanceUID)
    kind = ObjectKind.SEGMENTATION
    dataset = hd.seg.Segmentation(
        source_images=source.datasets,
        pixel_array=relative,
        segmentation_type="FRACTIONAL",
        segment_descriptions=[segment],
        series_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "series"),
        series_number=SERIES_NUMBERS[kind],
        sop_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "instance"),
        instance_number=1,
        fractional_type="PROBABILITY",
        max_fractional_value=255,
        omit_empty_frames=False,
        content_label="ATTRIBUTION",
        content_description="Positive attribution relative to its maximum, not probability",
        **_equipment(identity),
    )
    return ExportedObject(kind, _finish(dataset, kind))


_PROCEDURES = {
    "CT": ("25045-6", "LN", "CT unspecified body region"),
    "MR": ("25056-3", "LN", "MRI unspecified body region"),
}
_IMAGING = ("363679005", "SCT", "Imaging")
_POSITIVE = ("10828004", "SCT", "Positive")
_NEGATIVE = ("260385009", "SCT", "Negative")


def structured_report(
    source: CaseSource,
    explanation: Mapping[str, Any],
    identity: ModelIdentity,
    related: list[ExportedObject],
) -> ExportedObject:
    """A Comprehensive 3D SR (TID 1500) with the case's result; ``related``: the other objects of the case,
    listed as its other evidence."""
    hd = _highdicom()
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.codedict import codes

    series_uid = str(source.datasets[0].SeriesInstanceUID)
    probability = float(explanation["probability"])
    threshold = float(explanation["threshold"])
    predicted = int(explanation.get("predicted", int(probability >= threshold)))
    algorithm = hd.sr.AlgorithmIdentification(
        name=_label(f"mmdx {identity.name}"),
        version=identity.version,
        parameters=[
            f"bundle manifest SHA-256 {identity.bundle_sha256}",
            f"explanation {identity.explanation_method} version {identity.explanation_version}",
            f"mmdx {identity.software_version}",
        ],
    )
    unitless = _code("1", "no units", "UCUM")
    logit = _code("{logit}", "logit", "UCUM")
    measurements = [
        hd.sr.Measurement(
            name=_code("PROB", "Calibrated probability of the positive class"),
            value=probability,
            unit=unitless,
            algorithm_id=algorithm,
        ),
        hd.sr.Measurement(
            name=_code("THRESHOLD", "Operating threshold on the calibrated probability"),
            value=threshold,
            unit=unitless,
            algorithm_id=algorithm,
        ),
    ]
    shapley = explanation.get("shapley") or {}
    for modality in MODALITIES:
        value = shapley.get(modality.value)
        if value is None or not (explanation.get("presence") or {}).get(modality.value, True):
            continue
        measurements.append(
            hd.sr.Measurement(
                name=_code(
                    f"SHAPLEY-{modality.value.upper()}", f"Shapley value of the {modality.value} modality"
                ),
                value=float(value),
                unit=logit,
                algorithm_id=algorithm,
            )
        )
    for key, meaning in (
        ("base_value", "Calibrated logit with no modality"),
        ("full_value", "Calibrated logit with every present modality"),
    ):
        if shapley.get(key) is not None:
            measurements.append(
                hd.sr.Measurement(
                    name=_code(key.upper().replace("_", "-"), meaning), value=float(shapley[key]), unit=logit
                )
            )
    decision = hd.sr.QualitativeEvaluation(
        name=_code("DECISION", "Decision at the operating threshold"),
        value=CodedConcept(*(_POSITIVE if predicted else _NEGATIVE)),
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(series_uid, identity.explanation_version, "tracking"),
            identifier="mmdx case result",
        ),
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[decision],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(d) for d in source.datasets],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", identity.bundle_sha256),
            name=_label(f"mmdx {identity.name}"),
            manufacturer_name=MANUFACTURER,
            model_name=_label(identity.name),
            serial_number=identity.version,
        ),
    )
    procedure = _PROCEDURES.get(source.modality, _IMAGING)
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CodedConcept(*procedure),
        imaging_measurements=[group],
    )
    kind = ObjectKind.STRUCTURED_REPORT
    dataset = hd.sr.Comprehensive3DSR(
        evidence=[*source.datasets, *(o.dataset for o in related)],
        content=report[0],
        series_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "series"),
        series_number=SERIES_NUMBERS[kind],
        sop_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "instance"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
    )
    return ExportedObject(kind, _finish(dataset, kind))


def _orientation_letters(direction: np.ndarray) -> str:
    """Patient orientation letters of an LPS direction, largest component first (e.g. ``"L"``, ``"PH"``)."""
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    order = np.argsort(-np.abs(direction))
    out = "".join(letters[a][int(direction[a] > 0)] for a in order if abs(direction[a]) > 1e-3)
    return out[:3] or "L"


def key_slice(frames: np.ndarray) -> int:
    """The frame holding the most positive attribution (the first on a tie, 0 for an all-negative map)."""
    return int(np.argmax(np.clip(np.nan_to_num(frames), 0, None).reshape(len(frames), -1).sum(axis=1)))


def overlay_picture(pixels: np.ndarray, attribution: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """``pixels`` ``[R, C]`` in the window ``(centre, width)`` as grey, attribution ``[R, C]`` blended in red
    (positive) and blue (negative) with opacity proportional to its magnitude: uint8 ``[R, C, 3]``."""
    centre, width = window
    grey = np.clip((pixels - (centre - width / 2)) / max(width, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    scale = float(np.abs(attribution).max())
    if scale > 0:
        strength = np.abs(attribution) / scale
        alpha = (0.7 * strength)[..., None]
        colour = np.where((attribution >= 0)[..., None], [1.0, 0.1, 0.1], [0.1, 0.3, 1.0])
        rgb = (1 - alpha) * rgb + alpha * colour
    return np.round(rgb * 255).astype(np.uint8)


def _window(dataset: Dataset, pixels: np.ndarray) -> tuple[float, float]:
    from pydicom.multival import MultiValue

    centre, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if centre is not None and width is not None:
        centre = centre[0] if isinstance(centre, MultiValue) else centre
        width = width[0] if isinstance(width, MultiValue) else width
        if float(width) > 0:
            return float(centre), float(width)
    low, high = np.percentile(pixels, [1, 99])
    return float(low + high) / 2, float(max(high - low, 1e-6))


def secondary_capture(source: CaseSource, identity: ModelIdentity) -> ExportedObject:
    """The key slice with its attribution blended in, as an RGB Secondary Capture image."""
    hd = _highdicom()
    import pydicom
    from pydicom.pixels import apply_modality_lut

    k = key_slice(source.frames)
    header = source.datasets[k]
    full = pydicom.dcmread(header.filename)
    pixels = apply_modality_lut(full.pixel_array, full).astype(np.float64)
    if str(full.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        pixels = pixels.max() - pixels
    picture = overlay_picture(pixels, source.frames[k], _window(full, pixels))
    orientation = np.asarray(header.ImageOrientationPatient, dtype=float)
    series_uid = str(header.SeriesInstanceUID)
    kind = ObjectKind.SECONDARY_CAPTURE
    dataset = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=full,
        pixel_array=picture,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "series"),
        series_number=SERIES_NUMBERS[kind],
        sop_instance_uid=derived_uid(series_uid, identity.explanation_version, kind, "instance"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        pixel_spacing=tuple(float(v) for v in header.PixelSpacing),
        patient_orientation=(_orientation_letters(orientation[:3]), _orientation_letters(orientation[3:])),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
    )
    dataset.BurnedInAnnotation = "NO"
    dataset.ImageComments = _label(f"slice {k + 1} of {len(source.datasets)}; red = towards positive")
    _set_laterality(dataset, source)
    return ExportedObject(kind, _finish(dataset, kind))


def case_objects(
    source: CaseSource,
    explanation: Mapping[str, Any],
    identity: ModelIdentity,
    *,
    segmentation: bool = False,
    overlay: bool = False,
) -> list[ExportedObject]:
    """Every object of one case: the Parametric Map, the optional Segmentation and overlay, and the SR."""
    objects = [parametric_map(source, identity)]
    if segmentation:
        objects.append(fractional_segmentation(source, identity))
    if overlay:
        objects.append(secondary_capture(source, identity))
    objects.append(structured_report(source, explanation, identity, related=list(objects)))
    return objects
