"""The explanations section: what ``mmdx explain`` measured about its own attributions.

Read from ``RUN/explanations/summary.json`` and ``index.json`` through :class:`mmdx.run.RunPaths`:
faithfulness (deletion curves: removing the most-attributed inputs first should move the output faster
than removing them in random order), the model-randomisation sanity check (attributions of a model with
re-initialised weights should not resemble the trained model's), Integrated Gradients convergence, and on
synthetic cohorts the scores against the planted ground truth. Explanations computed for another model
version describe another model, so they make the section unavailable rather than misleading.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mmdx.audit.sections import AUDIT_SECTIONS, AuditInputs, Section, SectionSpec, SectionUnavailable
from mmdx.errors import MmdxError
from mmdx.explain.artifacts import ExplanationNotFound, ExplanationUnreadable
from mmdx.keys import MODALITIES
from mmdx.run import RunPaths


def _deletion(curves: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for modality in (m.value for m in MODALITIES):
        curve = curves.get(modality) or {}
        if not curve.get("n_cases"):
            continue
        out[modality] = {
            "n_cases": int(curve["n_cases"]),
            "auc_attribution": curve.get("auc_attribution"),
            "auc_random": curve.get("auc_random"),
            "auc_difference": curve.get("auc_difference"),
            "share_faster_than_random": curve.get("share_faster_than_random"),
            "full_removal_change": curve.get("full_removal_change"),
            "faster_than_random": (
                curve["auc_attribution"] < curve["auc_random"]
                if curve.get("auc_attribution") is not None and curve.get("auc_random") is not None
                else None
            ),
            "fractions": list(curve.get("fractions") or []),
            "mean_curve_attribution": list(curve.get("mean_curve_attribution") or []),
            "mean_curve_random": list(curve.get("mean_curve_random") or []),
        }
    return out


def _randomisation(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"reinitialisation": result.get("reinitialisation"), "modalities": {}}
    for modality in (m.value for m in MODALITIES):
        value = result.get(modality) or {}
        if value.get("n_cases"):
            out["modalities"][modality] = {
                "n_cases": int(value["n_cases"]),
                "spearman_abs_mean": value.get("spearman_abs_mean"),
                "spearman_abs_interval": value.get("spearman_abs_interval"),
                "spearman_abs_median": value.get("spearman_abs_median"),
                "spearman_signed_mean": value.get("spearman_signed_mean"),
                "passed": value.get("passed"),
                "verdict": value.get("verdict"),
                "anatomy_trained_mean": value.get("anatomy_trained_mean"),
                "anatomy_randomised_mean": value.get("anatomy_randomised_mean"),
            }
    return out


def explanations_section(run: RunPaths, model_version: str) -> dict[str, Any]:
    """Faithfulness, sanity and ground-truth results of the run's explanations, per attribution method."""
    try:
        summary = run.read_explanation_summary()
    except ExplanationNotFound as exc:
        raise SectionUnavailable(f"no explanations in the run ({exc})") from None
    except ExplanationUnreadable as exc:
        raise SectionUnavailable(str(exc)) from None
    try:
        index = run.read_explanation_index()
    except ExplanationNotFound:
        index = {}
    except ExplanationUnreadable as exc:
        raise SectionUnavailable(str(exc)) from None
    explained_version = summary.get("model_version")
    if explained_version != model_version:
        raise SectionUnavailable(
            f"the explanations were computed for model version {explained_version!r}, but the run's bundle is "
            f"{model_version!r}; run 'mmdx explain RUN' again"
        )
    cases = index.get("cases") or []
    methods = {}
    for name, section in (summary.get("methods") or {}).items():
        convergence = section.get("convergence_delta")
        methods[name] = {
            "convergence_delta": convergence if convergence and convergence.get("n_cases") else None,
            "deletion": _deletion(section.get("deletion") or {}),
            "randomisation": _randomisation(section.get("randomisation") or {}),
            "ground_truth": section.get("ground_truth"),
        }
    ground_truth = bool(summary.get("ground_truth_available"))
    return {
        "explanation_version": summary.get("explanation_version"),
        "model_version": explained_version,
        "created": index.get("created"),
        "n_cases": int(summary.get("n_cases", len(cases))),
        "check_cases": int(summary.get("check_cases", 0)),
        "cases_by_split": dict(sorted(Counter(str(c.get("split")) for c in cases).items())),
        "primary_method": index.get("primary_method") or next(iter(methods), None),
        "settings": summary.get("settings") or {},
        "seconds_per_case": summary.get("seconds_per_case") or {},
        "ground_truth_available": ground_truth,
        "ground_truth_warnings": list(summary.get("ground_truth_warnings") or []),
        "ground_truth_reason": None
        if ground_truth
        else "the cohort has no planted ground truth (only synthetic cohorts do)",
        "image_method": _image_method(summary, run),
        "methods": methods,
    }


def _image_method(summary: dict[str, Any], run: RunPaths) -> dict[str, Any]:
    """Which method drew the image maps, whether it passed, the rule's candidates (runs explained before
    the choice existed: the primary method, not checked)."""
    record = dict(summary.get("image_method") or {})
    out = {
        "name": record.get("name") or next(iter(summary.get("methods") or {}), None),
        "chosen_by": record.get("chosen_by"),
        "passed": record.get("passed"),
        "any_passed": record.get("any_passed"),
        "reason": record.get("reason"),
        "rule": record.get("rule"),
        "checks": record.get("checks"),
        "candidates": [],
    }
    try:
        choice = run.read_image_method_choice()
    except MmdxError:
        choice = None
    if (
        choice
        and choice.get("chosen") == out["name"]
        and choice.get("model_version") == summary.get("model_version")
    ):
        out["candidates"] = list(choice.get("candidates") or [])
    return out


def _build(inputs: AuditInputs) -> dict[str, Any]:
    return explanations_section(inputs.run, inputs.bundle.version)


AUDIT_SECTIONS.register(SectionSpec(Section.EXPLANATIONS, "explanations", _build))
