"""Which items of the TRIPOD+AI reporting checklist the audit report covers, and where.

TRIPOD+AI: Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for reporting
clinical prediction models that use regression or machine learning methods. BMJ 2024;385:e078378
(doi:10.1136/bmj-2023-078378). The checklist has 27 items; this report covers those that a run's own data
can answer. The others (the study's rationale, dates of data collection, ethics approval, funding, patient
and public involvement, interpretation) belong to the study report written by people, and are listed as
such. An item counts as covered only when the sections answering it were computed for this report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmdx.audit.sections import Section, SectionStatus

REFERENCE = (
    "Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for reporting clinical "
    "prediction models that use regression or machine learning methods. BMJ 2024;385:e078378. "
    "doi:10.1136/bmj-2023-078378"
)


@dataclass(frozen=True)
class TripodItem:
    """A checklist item (``item``: number and letter, e.g. ``"12a"``), its topic in brief, the report
    sections that answer it, and what they contribute."""

    item: str
    topic: str
    sections: tuple[Section, ...]
    covers: str


# fmt: off
COVERED: tuple[TripodItem, ...] = (
    TripodItem("3b", "Target population and intended users", (Section.MODEL_CARD,), "intended use, out-of-scope uses"),
    TripodItem("5a", "Source of data", (Section.PROVENANCE, Section.COHORT_FLOW), "cohort name, version, fingerprint"),
    TripodItem("6b", "Eligibility criteria", (Section.COHORT_FLOW,), "validation rules: exclusions by reason code"),
    TripodItem("7", "Data preparation", (Section.MODEL_CARD,), "inputs, canonical units, image resampling and intensity window"),
    TripodItem("8a", "Outcome definition", (Section.MODEL_CARD,), "the labelled outcome and its positive class"),
    TripodItem("9a", "Predictors", (Section.MODEL_CARD,), "each input with its unit"),
    TripodItem("10", "Sample size", (Section.COHORT_FLOW,), "cases and outcome events per split"),
    TripodItem("11", "Missing data", (Section.COHORT_FLOW, Section.ROBUSTNESS), "modality presence patterns; masking of absent modalities; performance under missingness"),
    TripodItem("12a", "How the data were used (partitioning)", (Section.COHORT_FLOW, Section.PROVENANCE), "patient-level splits and their fingerprint"),
    TripodItem("12c", "Model type and building", (Section.MODEL_CARD, Section.PROVENANCE), "encoders, fusion, training settings, full config"),
    TripodItem("12d", "Heterogeneity across clusters", (Section.SUBGROUPS,), "performance per site"),
    TripodItem("12e", "Performance measures", (Section.DISCRIMINATION, Section.CALIBRATION, Section.OPERATING_POINT), "AUROC, AUPRC, calibration, net benefit, with methods stated"),
    TripodItem("12f", "Model updating or recalibration", (Section.CALIBRATION,), "calibration on the validation split (Platt or temperature scaling), before and after"),
    TripodItem("13", "Class imbalance", (Section.MODEL_CARD, Section.COHORT_FLOW), "prevalence per split, class weighting"),
    TripodItem("14", "Fairness", (Section.SUBGROUPS,), "subgroup performance and equalized-odds gaps"),
    TripodItem("15", "Model output and decision threshold", (Section.OPERATING_POINT,), "calibrated probability; threshold and how it was chosen"),
    TripodItem("16", "Training versus evaluation data", (Section.COHORT_FLOW, Section.DISCRIMINATION), "distributions and performance per split"),
    TripodItem("18f", "Code availability", (Section.PROVENANCE,), "mmdx version and source commit"),
    TripodItem("20a", "Participant flow", (Section.COHORT_FLOW,), "cases in, excluded, per split"),
    TripodItem("20b", "Participant characteristics", (Section.COHORT_FLOW,), "subgroup make-up and modality presence per split"),
    TripodItem("20c", "Development versus evaluation data", (Section.COHORT_FLOW,), "per-split distributions side by side"),
    TripodItem("21", "Participants and outcome events per analysis", (Section.COHORT_FLOW, Section.DISCRIMINATION), "n and events behind every estimate"),
    TripodItem("22", "Full model specification", (Section.PROVENANCE,), "resolved config and weights checksum (the bundle)"),
    TripodItem("23a", "Performance with confidence intervals", (Section.DISCRIMINATION, Section.OPERATING_POINT, Section.CALIBRATION), "point estimates with 95% intervals"),
    TripodItem("23b", "Performance in key subgroups", (Section.SUBGROUPS,), "every subgroup of cohort.yaml, small groups flagged"),
    TripodItem("24", "Model updating results", (Section.EXTERNAL_VALIDATION,), "calibration at another site before and after local recalibration"),
    TripodItem("26", "Limitations", (Section.MODEL_CARD,), "limitations from the config and computed facts"),
    TripodItem("27a", "Handling of poor-quality or unavailable inputs", (Section.ROBUSTNESS, Section.COHORT_FLOW), "rejections, missing modalities, degraded inputs"),
    TripodItem("27b", "User interaction and expertise", (Section.CLINICIAN_REVIEW, Section.EXPLANATIONS), "clinician review and explanation checks"),
)
# fmt: on

NOT_COVERED: tuple[tuple[str, str], ...] = (
    ("1", "Title"),
    ("2", "Abstract"),
    ("3a", "Healthcare context and rationale"),
    ("3c", "Known health inequalities"),
    ("4", "Objectives"),
    ("5b", "Dates of data collection"),
    ("6a", "Setting and centres"),
    ("6c", "Treatments received"),
    ("8b", "Outcome assessment"),
    ("8c", "Blinding of outcome assessment"),
    ("9b", "Predictor measurement"),
    ("9c", "Blinding of predictor assessment"),
    ("12b", "Handling of predictors in the analysis"),
    ("12g", "How predictions were calculated in an evaluation"),
    ("17", "Ethical approval"),
    ("18a-e", "Funding, conflicts of interest, protocol, registration, data sharing"),
    ("19", "Patient and public involvement"),
    ("25", "Interpretation"),
    ("27c", "Future research"),
)

NOT_COVERED_REASON = "answered by the study report written by its authors, not by the run's data"


def tripod_map(statuses: dict[str, str]) -> dict[str, Any]:
    """The items this report covers, each ``reported`` (all its sections computed), ``partial`` (some) or
    ``not_available`` (none), and the items it leaves to the study report.

    ``statuses``: section name -> ``"ok"`` / ``"not_available"``.
    """
    items = []
    for entry in COVERED:
        ok = [s for s in entry.sections if statuses.get(s) == SectionStatus.OK]
        coverage = "reported" if len(ok) == len(entry.sections) else "partial" if ok else "not_available"
        items.append(
            {
                "item": entry.item,
                "topic": entry.topic,
                "sections": [s.value for s in entry.sections],
                "covers": entry.covers,
                "coverage": coverage,
            }
        )
    return {
        "reference": REFERENCE,
        "items": items,
        "not_covered": [
            {"item": item, "topic": topic, "reason": NOT_COVERED_REASON} for item, topic in NOT_COVERED
        ],
    }
