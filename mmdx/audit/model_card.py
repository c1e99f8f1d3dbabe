"""The model-card section: what the model is for, what it reads, how it was built, and its limitations.

Facts come from the bundle (``card.json``, the resolved config, the fitted preprocessing). Limitations are
of two kinds, each marked with its source: those that follow from the config (image resolution, note
truncation, the features read, how the threshold was chosen) and those computed from the other sections
of this very report (evaluation size, small subgroups, calibration, dependence on a modality, failed
explanation checks, a changed cohort, ...).
"""

from __future__ import annotations

from typing import Any

from mmdx.audit.sections import Section, is_ok
from mmdx.bundle import Bundle
from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.dataset import Preprocessing
from mmdx.errors import CohortError
from mmdx.keys import MODALITIES

#: evaluation classes smaller than this make intervals wide enough to say so
MIN_EVENTS_FOR_PRECISION = 100
#: a calibration slope further than this from 1 is called out
SLOPE_TOLERANCE = 0.2
#: an AUROC drop at least this large when a modality is removed counts as dependence on it
MODALITY_DEPENDENCE = 0.05


def _catalogue() -> FeatureCatalogue | None:
    try:
        return FeatureCatalogue.load()
    except CohortError:
        return None


def _tabular_inputs(card: dict[str, Any]) -> list[dict[str, Any]]:
    catalogue = _catalogue()
    out = []
    for entry in (card.get("inputs") or {}).get("tabular") or []:
        key, unit = entry.get("key"), entry.get("unit")
        row = {"key": key, "unit": unit, "display": None, "loinc": None}
        if catalogue is not None and key in catalogue.keys and catalogue[key].unit == unit:
            row["display"], row["loinc"] = catalogue[key].display, catalogue[key].loinc
        out.append(row)
    return out


def model_card_section(bundle: Bundle) -> dict[str, Any]:
    """Intended and out-of-scope uses, task, inputs with units, architecture, training and operating point.

    ``limitations`` and ``tripod_ai`` are added by the report builder once the other sections exist.
    """
    card = bundle.card
    config = bundle.config
    preprocessing = bundle.preprocessing
    architecture = {}
    for name in (*(m.value for m in MODALITIES), "fusion"):
        component = getattr(config.model, name)
        if component is not None:
            architecture[name] = {"name": component.name, **component.params}
    image = (card.get("inputs") or {}).get("image")
    train = config.train
    return {
        "task": card.get("task") or {},
        "intended_use": card.get("intended_use"),
        "out_of_scope": list(card.get("out_of_scope") or []),
        "modalities": list(preprocessing.modalities),
        "inputs": {
            "image": None
            if image is None
            else {
                **image,
                "intensity": _intensity_text(preprocessing),
                "orientation": image.get("orientation", "RAS"),
            },
            "tabular": _tabular_inputs(card),
            "text": None
            if (card.get("inputs") or {}).get("text") is None
            else {
                "description": card["inputs"]["text"],
                "max_tokens": preprocessing.text_max_length,
                "tokenizer": "trained on the training split's notes"
                if preprocessing.tokenizer is not None
                else None,
            },
            "missing_modalities": "an absent modality is masked by the fusion and contributes nothing",
        },
        "architecture": architecture,
        "parameters": card.get("parameters") or {},
        "training": {
            **(card.get("training") or {}),
            "max_epochs": train.epochs,
            "learning_rate": train.lr,
            "modality_dropout": train.modality_dropout,
            "class_weighting": train.class_weighting,
            "auxiliary_loss_weight": train.aux_loss_weight,
            "strategy": (card.get("training") or {}).get("strategy", "joint"),
            "early_stopping": (
                f"validation AUROC, patience {train.patience}"
                if train.early_stopping == "fused"
                else f"fused and each encoder's own validation AUROC, patience {train.patience}"
            ),
            "seed": card.get("seed"),
        },
        "operating_point": card.get("operating_point") or {},
        "calibration": card.get("calibration") or {},
        "warnings": list(card.get("warnings") or []),
    }


def _intensity_text(preprocessing: Preprocessing) -> str:
    """How image intensities become the model input, per modality family the model was trained on."""
    plan = preprocessing.image_plan
    if plan is None:
        return "none"
    families = [k for k in plan.intensity if k in plan.trained_families] or list(plan.intensity)
    return "; ".join(
        f"{'every image' if k == 'ANY' else k}: {plan.intensity[k].describe()}" for k in families
    )


def _config_limitations(bundle: Bundle) -> list[str]:
    preprocessing = bundle.preprocessing
    card = bundle.card
    out = []
    image = preprocessing.image_config
    if image is not None:
        shape = "x".join(str(s) for s in image.shape)
        if image.spacing:
            finest = min(image.spacing)
            out.append(
                f"Images are resampled to {shape} voxels of {' x '.join(f'{s:g}' for s in image.spacing)} mm: "
                f"structures smaller than about two voxels ({2 * finest:g} mm) are below the model's resolution."
            )
        else:
            out.append(
                f"Images are padded or cropped to {shape} voxels without resampling to a common spacing."
            )
        out.append(f"Image intensities: {_intensity_text(preprocessing)}.")
        if image.trained_families:
            out.append(
                f"The model was trained on {', '.join(image.trained_families)} images only; images of other "
                "modalities are flagged IMAGE_MODALITY_UNSEEN and lie outside what it learned."
            )
    if preprocessing.tokenizer is not None:
        out.append(
            f"Notes are cut to their first {preprocessing.text_max_length} tokens; later text in a long note is not read."
        )
    if preprocessing.features:
        out.append(
            f"Only the {len(preprocessing.features)} vital signs and lab values listed under inputs are read; values in an "
            "unknown unit or outside their plausible range are dropped by validation."
        )
    point = card.get("operating_point") or {}
    training = card.get("training") or {}
    out.extend(f"Training: {warning[0].upper()}{warning[1:]}." for warning in card.get("warnings") or [])
    if point:
        out.append(
            f"The threshold was chosen on the validation split ({training.get('val_cases', '?')} cases) by the "
            f"rule '{point.get('rule')}'; it has not been validated prospectively."
        )
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


Limit = tuple[Section, str]


def _cohort_limits(sections: dict[str, dict[str, Any]], synthetic: bool) -> list[Limit]:
    out: list[Limit] = []
    provenance = sections.get(Section.PROVENANCE, {})
    cohort = (provenance.get("cohort") or {}).get("name") if is_ok(provenance) else None
    if synthetic:
        out.append(
            (
                Section.PROVENANCE,
                "The cohort is synthetic (written by mmdx synth): these results show the pipeline works, not how "
                "the model performs on real patients.",
            )
        )
    out.append(
        (
            Section.COHORT_FLOW,
            f"All splits come from one cohort{f' ({cohort})' if cohort else ''}: this is internal validation; no "
            "external validation on another site or period is included.",
        )
    )
    if is_ok(provenance):
        now = provenance.get("cohort_now") or {}
        if now.get("matches_training") is False:
            out.append(
                (Section.PROVENANCE, "The cohort's files changed since training (fingerprints differ).")
            )
        if (provenance.get("split_now") or {}).get("matches_training") is False:
            out.append(
                (
                    Section.PROVENANCE,
                    "The predicted cases or their splits differ from those at training (split fingerprints differ).",
                )
            )
        if (provenance.get("git") or {}).get("dirty"):
            out.append(
                (Section.PROVENANCE, "The mmdx source had uncommitted changes when this report was made.")
            )
    flow = sections.get(Section.COHORT_FLOW, {})
    if is_ok(flow) and flow.get("rejected"):
        share = flow["rejected"] / max(1, flow["rows_in"])
        out.append(
            (
                Section.COHORT_FLOW,
                f"{flow['rejected']} of {flow['rows_in']} cases ({share:.1%}) were excluded by validation; the "
                "model was not evaluated on cases like them.",
            )
        )
    return out


def _discrimination_limits(section: dict[str, Any]) -> list[Limit]:
    if not is_ok(section):
        return []
    evaluation = section["by_split"][section["split"]]
    interval = evaluation["auroc"]
    if min(evaluation["n_positive"], evaluation["n_negative"]) >= MIN_EVENTS_FOR_PRECISION:
        return []
    return [
        (
            Section.DISCRIMINATION,
            f"The {section['split']} split has {evaluation['n']} cases ({evaluation['n_positive']} "
            f"positive): estimates are imprecise (AUROC interval {_fmt(interval['low'])} to "
            f"{_fmt(interval['high'])}).",
        )
    ]


def _subgroup_limits(section: dict[str, Any]) -> list[Limit]:
    if not is_ok(section):
        return []
    out: list[Limit] = []
    flagged = [
        f"{table['attribute']}={row['group']}"
        for table in section["attributes"]
        for row in table["rows"]
        if row["too_small"]
    ]
    if flagged:
        shown = ", ".join(flagged[:8]) + (f" and {len(flagged) - 8} more" if len(flagged) > 8 else "")
        out.append((Section.SUBGROUPS, f"{len(flagged)} subgroup(s) are too small to judge: {shown}."))
    for table in section["attributes"]:
        gap = table["gaps"]
        if gap.get("auroc_gap") is not None and gap.get("auroc_extremes"):
            high, low = gap["auroc_extremes"]
            out.append(
                (
                    Section.SUBGROUPS,
                    f"AUROC differs by {_fmt(gap['auroc_gap'])} between {table['attribute']} groups ({high} "
                    f"highest, {low} lowest); equalized-odds difference {_fmt(gap['equalized_odds_difference'])}.",
                )
            )
    for entry in section.get("unavailable") or []:
        out.append(
            (Section.SUBGROUPS, f"Subgroup '{entry['attribute']}' could not be audited: {entry['reason']}.")
        )
    return out


def _calibration_limits(section: dict[str, Any]) -> list[Limit]:
    if not is_ok(section):
        return []
    slope = section["after"]["fit"].get("slope")
    if slope is None or abs(slope - 1.0) <= SLOPE_TOLERANCE:
        return []
    kind = "too extreme" if slope < 1.0 else "too modest"
    return [
        (
            Section.CALIBRATION,
            f"After calibration the calibration slope is {_fmt(slope, 2)} (ideal 1): predicted risks "
            f"are {kind} on the {section['split']} split.",
        )
    ]


def _robustness_limits(section: dict[str, Any]) -> list[Limit]:
    if not is_ok(section):
        return []
    out: list[Limit] = []
    reproduction = section.get("reproduction") or {}
    if reproduction.get("reproduced") is False:
        out.append(
            (
                Section.ROBUSTNESS,
                "Re-running the model did not reproduce predictions.parquet (largest logit difference "
                f"{reproduction['max_abs_logit_difference']:.2g}); the cohort or environment changed.",
            )
        )
    for branch in section.get("branches") or []:
        if branch["under_used"]:
            out.append(
                (
                    Section.ROBUSTNESS,
                    f"{branch['modality']} branch: alone {_fmt(branch['alone']['estimate'], 2)}, lost when removed "
                    f"{_fmt(branch['lost_when_removed']['estimate'], 2)}. The fused model uses little of what this "
                    "modality predicts on its own (or the other modalities carry the same information); "
                    "train.strategy staged trains each encoder on its own first.",
                )
            )
    for row in section["conditions"]:
        change = (row.get("auroc_change") or {}).get("estimate")
        if row["kind"] == "modality_removed" and change is not None and change <= -MODALITY_DEPENDENCE:
            out.append(
                (
                    Section.ROBUSTNESS,
                    f"Without the {row['modality']} modality AUROC falls by {_fmt(-change)}: cases missing it "
                    "get markedly less accurate predictions.",
                )
            )
    return out


def _explanation_and_review_limits(sections: dict[str, dict[str, Any]]) -> list[Limit]:
    out: list[Limit] = []
    explanations = sections.get(Section.EXPLANATIONS, {})
    if is_ok(explanations):
        drawn = explanations.get("image_method") or {}
        if drawn.get("passed") is False:
            out.append(
                (
                    Section.EXPLANATIONS,
                    f"The image maps (drawn by {drawn.get('name')}) did not pass the model-randomisation test"
                    + ("; no image attribution method did" if drawn.get("any_passed") is False else "")
                    + ": they may follow the anatomy of the image more than the model.",
                )
            )
        for method, result in explanations["methods"].items():
            failing = [m for m, d in result["deletion"].items() if d.get("faster_than_random") is False]
            if failing:
                out.append(
                    (
                        Section.EXPLANATIONS,
                        f"{method} attributions for {', '.join(failing)} do not beat random order in the deletion "
                        "test; do not rely on them for these modalities.",
                    )
                )
    else:
        reason = explanations.get("reason", "not computed")
        out.append((Section.EXPLANATIONS, f"Explanations were not assessed: {reason}."))
    review = sections.get(Section.CLINICIAN_REVIEW, {})
    if not is_ok(review):
        out.append(
            (
                Section.CLINICIAN_REVIEW,
                f"No clinician review is included: {review.get('reason', 'not computed')}.",
            )
        )
    return out


def branch_rows(sections: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """For the model card: each modality's own AUROC (training validation, and on the evaluated split) next to
    the fused AUROC lost when it is removed, from the robustness section (empty when it is not available)."""
    robustness = sections.get(Section.ROBUSTNESS, {})
    if not is_ok(robustness):
        return []
    return [
        {
            "modality": b["modality"],
            "own_val_auroc": b["own_val_auroc"],
            "alone": (b["alone"] or {}).get("estimate"),
            "lost_when_removed": (b["lost_when_removed"] or {}).get("estimate"),
            "split": robustness["split"],
            "under_used": b["under_used"],
        }
        for b in robustness.get("branches") or []
    ]


def computed_limitations(sections: dict[str, dict[str, Any]], synthetic: bool) -> list[dict[str, str]]:
    """Limitations that follow from the computed sections (``section -> section dict``), in report order."""
    found = [
        *_cohort_limits(sections, synthetic),
        *_discrimination_limits(sections.get(Section.DISCRIMINATION, {})),
        *_subgroup_limits(sections.get(Section.SUBGROUPS, {})),
        *_calibration_limits(sections.get(Section.CALIBRATION, {})),
        *_robustness_limits(sections.get(Section.ROBUSTNESS, {})),
        *_explanation_and_review_limits(sections),
    ]
    return [{"source": "computed", "section": section.value, "text": text} for section, text in found]


def limitations(bundle: Bundle, sections: dict[str, dict[str, Any]], synthetic: bool) -> list[dict[str, str]]:
    """All limitations: from the config first, then computed from the report's sections."""
    from_config = [
        {"source": "config", "section": Section.MODEL_CARD.value, "text": text}
        for text in _config_limitations(bundle)
    ]
    return from_config + computed_limitations(sections, synthetic)
