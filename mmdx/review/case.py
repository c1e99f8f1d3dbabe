"""The case view model: everything the case review page shows about one case, built in one call.

:func:`build_case_view` checks the principal, records an ``open_case`` event, and gathers the prediction
(calibrated probability, uncertainty, threshold), the per-modality contributions (modality Shapley values
beside the fusion's gate values), the image on the model's grid with its attribution map and lesion mask,
the vital signs and labs with reference ranges and attributions, and the note with its word attributions.

Whatever is missing is said, not hidden: a modality the case lacks becomes a badge; a run or case without
explanations still shows its prediction, image, values and notes; a cohort that cannot be reached still
shows the prediction and the explanation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmdx.data.issues import ImageReadError
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Modality
from mmdx.review.access import authorize_case_reading
from mmdx.review.case_inputs import CaseInputs, CohortCaseReader
from mmdx.review.context import ReviewContext
from mmdx.review.explanations import ExplanationStatus, LoadedExplanation, load_explanation
from mmdx.review.highlight import TokenAttribution, token_attributions
from mmdx.review.rendering import CaseImage, load_case_image
from mmdx.review.uncertainty import NEAR_THRESHOLD_MARGIN, near_threshold, predictive_entropy
from mmdx.review.viewer import NativeImage, load_native_image
from mmdx.store import AuditAction, Principal

#: Stored as the explanation version of a verdict given without any explanation on screen.
NO_EXPLANATION = "none"

SHAPLEY_MEANING = (
    "Shapley value: the modality's share of the calibrated logit relative to no information (every "
    "modality masked); the values of the present modalities add up to f(all) - f(none)."
)
GATE_MEANING = "Gate: the weight (0 to 1) the fusion gave this modality's features for this case."
ATTRIBUTION_MEANING = (
    "Attribution: contribution to the calibrated logit relative to the explanation's baseline input; "
    "positive values push towards the positive class."
)
SHAPLEY_VS_ATTRIBUTION = (
    "The Shapley value and the summed attribution answer different questions, so they can differ, even in "
    "sign: the first compares the modality with its absence, the second each input value with a baseline "
    "value of that input."
)
SHAPLEY_VS_ATTRIBUTION_HELP = (
    "**Shapley value** (one number per modality): how much the calibrated logit changes when the modality "
    "is *added*, averaged over every combination of the other modalities; the model then sees the modality "
    "masked exactly as if it were missing. The values of the present modalities add up to f(all) - f(none).\n\n"
    "**Summed attribution** (the sum of the per-voxel, per-value or per-word attributions): how much the logit "
    "changes between the input and a *baseline input* (e.g. an image of air, values at the training median), "
    "with the other modalities present.\n\n"
    "They differ because the reference differs (absent modality vs. baseline input) and because the "
    "modalities interact in the fusion: an image can push the logit down relative to having no image "
    "(negative Shapley value) while its bright regions push it up relative to an image of air (positive "
    "summed attribution). Read the Shapley value for 'did this modality help the prediction', the "
    "attribution map for 'where in the input'."
)
#: A gate whose 5th-95th percentile range across the run's cases is narrower than this says nothing about a
#: single case (the fusion gives every case about the same weight), so it is not shown.
GATE_MIN_SPREAD = 0.05


@dataclass(frozen=True)
class ModalityContribution:
    """One modality of one case. ``shapley``/``attribution_total`` are ``None`` without an explanation."""

    modality: Modality
    present: bool
    in_model: bool
    gate: float | None
    shapley: float | None
    attribution_total: float | None


@dataclass(frozen=True)
class TabularRow:
    """One vital sign, lab value or case column as shown: value in ``unit`` (canonical), the reference
    range, whether the value lies outside it, and the attribution (``None`` when not explained)."""

    key: str
    display: str
    value: float | str | None
    unit: str | None
    reference_low: float | None
    reference_high: float | None
    abnormal: bool | None
    attribution: float | None
    decimals: int = 1

    @property
    def missing(self) -> bool:
        return self.value is None


@dataclass
class CaseView:
    """What the case review page shows (see the module docs). Built by :func:`build_case_view`."""

    case_id: str
    run_id: str
    model_version: str
    probability: float
    logit: float
    threshold: float
    predicted_positive: bool
    uncertainty: float
    near_threshold: bool
    positive_meaning: str
    presence: dict[Modality, bool]
    contributions: list[ModalityContribution]
    explanation: LoadedExplanation
    shapley_base: float | None = None
    shapley_full: float | None = None
    image: CaseImage | None = None
    native: NativeImage | None = None
    gate_notes: dict[Modality, str] = field(default_factory=dict)
    tabular: list[TabularRow] = field(default_factory=list)
    note_text: str | None = None
    note_spans: list[TokenAttribution] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def missing_modalities(self) -> list[Modality]:
        return [m for m in MODALITIES if not self.presence.get(m, False)]

    @property
    def explanation_version(self) -> str:
        """What a verdict records as the explanation shown: the version, or ``"none"``."""
        return self.explanation.version or NO_EXPLANATION

    @property
    def explained(self) -> bool:
        return self.explanation.status is ExplanationStatus.AVAILABLE


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _contributions(
    context: ReviewContext, row: dict, document: dict[str, Any] | None
) -> tuple[list[ModalityContribution], float | None, float | None]:
    shapley = (document or {}).get("shapley") or {}
    totals = (document or {}).get("modality_totals") or {}
    contributions = []
    for modality in MODALITIES:
        present = bool(row[f"has_{modality.value}"])
        in_model = modality in context.modalities
        gate = _number(row.get(f"gate_{modality.value}")) if present and in_model else None
        contributions.append(
            ModalityContribution(
                modality=modality,
                present=present,
                in_model=in_model,
                gate=gate,
                # the explainer writes 0 for an absent modality; shown as "not applicable", not as 0
                shapley=_number(shapley.get(modality.value))
                if present and isinstance(shapley, dict)
                else None,
                attribution_total=_number(totals.get(modality.value)) if isinstance(totals, dict) else None,
            )
        )
    base = _number(shapley.get("base_value")) if isinstance(shapley, dict) else None
    full = _number(shapley.get("full_value")) if isinstance(shapley, dict) else None
    return contributions, base, full


def _decimals(inputs: CaseInputs | None, key: str, value: object) -> int:
    feature = inputs.feature(key) if inputs is not None else None
    if feature is not None:
        return int(feature.decimals)
    return 0 if isinstance(value, float) and value.is_integer() else 1  # e.g. age in years


def _tabular_from_explanation(items: list[Any], inputs: CaseInputs | None) -> list[TabularRow]:
    rows = []
    for item in items:
        if not isinstance(item, dict) or "key" not in item:
            continue
        key = str(item["key"])
        raw = item.get("value")
        value: float | str | None = raw if isinstance(raw, str) else _number(raw)
        if item.get("missing"):
            value = None
        abnormal = item.get("abnormal")
        rows.append(
            TabularRow(
                key=key,
                display=str(item.get("display") or key),
                value=value,
                unit=str(item["unit"]) if item.get("unit") else None,
                reference_low=_number(item.get("reference_low")),
                reference_high=_number(item.get("reference_high")),
                abnormal=abnormal if isinstance(abnormal, bool) else None,
                attribution=_number(item.get("attribution")),
                decimals=_decimals(inputs, key, value),
            )
        )
    return rows


def _tabular_from_cohort(context: ReviewContext, inputs: CaseInputs) -> list[TabularRow]:
    rows = []
    for key in (*context.tabular_features, *context.numeric_columns):
        feature = inputs.feature(key) if key in context.tabular_features else None
        value = inputs.values.get(key)
        reference = feature.reference if feature is not None else None
        rows.append(
            TabularRow(
                key=key,
                display=feature.display if feature is not None else key.replace("_", " ").capitalize(),
                value=value,
                unit=feature.unit if feature is not None else None,
                reference_low=None if reference is None else float(reference[0]),
                reference_high=None if reference is None else float(reference[1]),
                abnormal=None
                if reference is None or value is None
                else not reference[0] <= value <= reference[1],
                attribution=None,
                decimals=int(feature.decimals) if feature is not None else 0,
            )
        )
    return rows


def _prediction_row(context: ReviewContext, case_id: str) -> dict:
    predictions = context.run.read_predictions()
    rows = predictions[predictions["case_id"] == case_id]
    if rows.empty:
        raise MmdxError(f"case {case_id!r} is not among the predictions of run '{context.run_id}'")
    return rows.iloc[0].to_dict()


def open_cohort(context: ReviewContext, principal: Principal) -> CohortCaseReader | None:
    """The run's cohort read once, to serve several cases to one signed-in user (keep it with that user's
    session, never in a cache shared by users); ``None`` when the cohort cannot be reached. Checks the
    principal like :func:`build_case_view`."""
    authorize_case_reading(context.store, principal, context.run_id)
    if context.cohort_dir is None:
        return None
    return CohortCaseReader(context.cohort_dir, context.numeric_columns)


def build_case_view(
    context: ReviewContext,
    principal: Principal,
    case_id: str,
    *,
    record_open: bool = True,
    margin: float = NEAR_THRESHOLD_MARGIN,
    cohort: CohortCaseReader | None = None,
) -> CaseView:
    """Everything the case page shows about ``case_id``.

    Checks that ``principal`` may read cases (raises :class:`~mmdx.store.PermissionDenied` if not) and,
    with ``record_open``, records an ``open_case`` event before reading anything. Raises
    :class:`MmdxError` when the case is not in the run; every other problem (no explanation, no cohort,
    an unreadable image) is reported in the view's ``problems`` or ``explanation.message``.

    ``cohort``: the reader from :func:`open_cohort`, to skip re-reading the cohort's tables on every case
    (default: read them for this case).
    """
    authorize_case_reading(context.store, principal, context.run_id)
    row = _prediction_row(context, case_id)
    if record_open:
        context.store.record_event(
            principal,
            AuditAction.OPEN_CASE,
            run_id=context.run_id,
            case_id=case_id,
            detail={"model_version": context.model_version},
        )
    probability = float(row["probability"])
    explanation = load_explanation(context, case_id)
    document = explanation.document
    contributions, base, full = _contributions(context, row, document)
    presence = {m: bool(row[f"has_{m.value}"]) for m in MODALITIES}
    gate_notes = uninformative_gates(context.run.read_predictions(), context.modalities)
    view = CaseView(
        case_id=case_id,
        run_id=context.run_id,
        model_version=context.model_version,
        probability=probability,
        logit=float(row["logit"]),
        threshold=context.threshold,
        predicted_positive=probability >= context.threshold,
        uncertainty=float(predictive_entropy(probability)),
        near_threshold=bool(near_threshold(probability, context.threshold, margin)),
        positive_meaning=context.positive_meaning,
        presence=presence,
        contributions=contributions,
        explanation=explanation,
        shapley_base=base,
        shapley_full=full,
        gate_notes=gate_notes,
    )
    if document is not None:
        explained_probability = _number(document.get("probability"))
        if explained_probability is not None and abs(explained_probability - probability) > 1e-4:
            view.problems.append(
                f"The explanation was computed for a probability of {explained_probability:.4f}, the run "
                f"predicts {probability:.4f}: it belongs to another model or evaluation; regenerate it."
            )

    items = (document or {}).get("tabular")
    explained_values = isinstance(items, list) and bool(items)
    inputs: CaseInputs | None = None
    if context.cohort_dir is not None:
        try:
            reader = cohort or CohortCaseReader(context.cohort_dir, context.numeric_columns)
            # values come from the explanation when it has them; harmonising again would only cost time
            inputs = reader.case(case_id, with_values=not explained_values)
            view.problems.extend(inputs.problems)
        except MmdxError as exc:
            view.problems.append(f"The cohort could not be read for this case: {exc}")
    else:
        view.problems.extend(context.notes)

    if presence[Modality.TABULAR] or items:
        if explained_values:
            view.tabular = _tabular_from_explanation(items, inputs)
        elif inputs is not None:
            view.tabular = _tabular_from_cohort(context, inputs)

    if inputs is not None and inputs.note_text is not None:
        view.note_text = inputs.note_text
        view.note_spans = token_attributions((document or {}).get("tokens"))
    elif inputs is not None and presence[Modality.TEXT] and inputs.notes_problem:
        view.problems.append(inputs.notes_problem)

    if presence[Modality.IMAGE] and context.image_config is not None and inputs is not None:
        _load_images(context, view, inputs)
    return view


def _original_grid_map(context: ReviewContext, view: CaseView) -> str | None:
    """The path of the case's attribution map on the image's own grid, ``None`` without one."""
    files = (view.explanation.document or {}).get("files")
    name = files.get("image_original_grid") if isinstance(files, dict) else None
    if not name:
        return None
    try:
        return str(context.run.explanation_case_file(view.case_id, str(name)))
    except MmdxError as exc:
        view.problems.append(f"The attribution map on the original image cannot be shown: {exc}")
        return None


def _load_images(context: ReviewContext, view: CaseView, inputs: CaseInputs) -> None:
    """The image on its own grid (:mod:`mmdx.review.viewer`) and on the model's grid (:mod:`~.rendering`),
    both from one reading of the image file (and of the mask's): decoding is most of a case's opening."""
    from mmdx.data.imaging import read_image

    assert context.image_config is not None
    if inputs.image_path is None:
        view.problems.append("The image of this case is not in the cohort any more.")
        return
    try:
        image = read_image(inputs.image_path)
    except ImageReadError as exc:
        view.problems.append(f"The image cannot be shown: {exc}")
        return
    mask = None
    if inputs.mask_path is not None:
        try:
            mask = read_image(inputs.mask_path)
        except ImageReadError as exc:
            view.problems.append(f"the lesion mask cannot be shown: {exc}")
    try:
        view.native, problems = load_native_image(
            image, _original_grid_map(context, view), mask, _declared_modality(context)
        )
        view.problems.extend(problems)
    except (ImageReadError, MmdxError) as exc:
        view.problems.append(f"The original image cannot be shown: {exc}")
    try:
        view.image, problems = load_case_image(image, context.image_config, view.explanation.image_map, mask)
        view.problems.extend(p for p in problems if p not in view.problems)
    except (ImageReadError, MmdxError) as exc:
        view.problems.append(f"The model-input view cannot be shown: {exc}")


def _declared_modality(context: ReviewContext) -> str | None:
    """The modality family the model was trained on when there is one (for images that name none)."""
    families = getattr(context.image_config, "trained_families", None) or ()
    names = sorted({str(f) for f in families})
    return names[0] if len(names) == 1 else None


def uninformative_gates(
    predictions: Any, modalities: tuple[Modality, ...] = MODALITIES
) -> dict[Modality, str]:
    """The modalities whose gate values say nothing about a single case, each with the reason in words.

    A gate is uninformative when, across the run's cases that have the modality, its 5th to 95th percentile
    range is narrower than :data:`GATE_MIN_SPREAD`: the fusion weights every case about the same, so a
    case's gate is the run's constant, not a statement about that case. With fewer than 10 such cases the
    spread is not judged (the gates are shown).
    """
    notes: dict[Modality, str] = {}
    for modality in modalities:
        column = f"gate_{modality.value}"
        if column not in predictions or f"has_{modality.value}" not in predictions:
            continue
        present = predictions[f"has_{modality.value}"].to_numpy(dtype=bool)
        gates = predictions.loc[present, column].to_numpy(dtype=np.float64)
        gates = gates[np.isfinite(gates)]
        if gates.size < 10:
            continue
        low, high = np.percentile(gates, [5.0, 95.0])
        if high - low < GATE_MIN_SPREAD:
            notes[modality] = (
                f"the {modality.value} gate is hidden: it lies between {low:.3f} and {high:.3f} for 90% of the "
                f"run's {gates.size} cases with this modality, so it says nothing about this case"
            )
    return notes


def attribution_extent(rows: list[TabularRow]) -> float:
    """The largest absolute attribution among ``rows`` (0 when none is attributed)."""
    values = [abs(r.attribution) for r in rows if r.attribution is not None]
    return float(np.max(values)) if values else 0.0
