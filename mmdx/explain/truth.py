"""Scoring attributions against the planted ground truth of a synthetic cohort (``ground_truth/truth.jsonl``).

The generator (:mod:`mmdx.data.synth`) knows why each case is positive: a lesion drawn into the image
(with its mask on the image's own grid), the causal features whose latest value depends on the label, and
the finding sentences planted in the notes, affirmed or negated. The scores, each with its chance level:

**Image** (cases with a lesion and an image):

- *mass inside the lesion*: the share of the positive attribution mass (on the original image grid) that
  lies inside the lesion mask; chance level = the share of the image's voxels inside the mask;
- *lift*: mass inside the lesion divided by its chance level (1 = no better than a uniform map);
- *pointing game* (Zhang et al., ECCV 2016): whether the model voxel with the highest attribution lies
  in the lesion's footprint on the model grid, dilated by one voxel in every direction (a tolerance of
  one model voxel, 3x3(x3) neighbourhood, for the resampling of a lesion a few voxels wide).

Both are reported over all lesion cases and over the true-positive ones (label 1 and predicted positive
at the bundle's threshold), where the model had a reason to look at the lesion.

**Tabular** (cases with at least one measured causal and one measured non-causal feature; missing
features are left out, their attribution is 0 by construction):

- *ranking AUC*: per case, the share of (causal, non-causal) pairs in which the causal feature has the
  larger ``|attribution|`` (ties count one half), averaged over cases; chance level 0.5;
- *top feature causal*: the share of cases whose largest ``|attribution|`` is a causal feature; chance
  level = the share of causal features among the measured ones.

**Text** (cases with a note whose seen part holds a planted sentence): whether the word with the highest
``|attribution|`` lies in a planted sentence, and whether the phrase with the highest ``|attribution|``
(:func:`~mmdx.data.note_spans.phrase_spans`: clauses, a negation with its scope as one unit) overlaps one,
reported for affirmed and negated sentences separately (a case counts for a status when it has a sentence of
that status); chance level = the share of the note's words inside those sentences. The *signed* phrase score
asks the same of the phrase that moves the risk most in the finding's own direction: the largest positive
attribution for an affirmed sentence, the largest negative one for a negated sentence (a miss when no phrase
has that sign). On the synthetic cohorts a negated finding carries almost as much evidence as an affirmed one
(log-likelihood ratios −1.07 and +1.20), so in a note with both the ``|attribution|`` ranking is a near tie
that a faithful model may resolve either way; the signed score separates them by direction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation

from mmdx.data.ground_truth import read_truth
from mmdx.errors import MmdxError
from mmdx.explain.attribution import CaseExplanation
from mmdx.explain.grids import footprint_on_model_grid, resample_to_reference

log = logging.getLogger(__name__)


def load_truth(cohort_dir: str | Path, warnings: list[str] | None = None) -> dict[str, dict] | None:
    """``case_id -> truth record`` of a synthetic cohort, or ``None`` when it has no ground truth.

    Lines that do not match ``data_schemas/ground_truth.schema.json`` are skipped; each is logged as a
    warning naming its line and, when ``warnings`` is given, appended to it.
    """
    truth = read_truth(cohort_dir)
    if truth is None:
        return None
    for message in truth.warnings:
        log.warning("ground truth skipped: %s", message)
        if warnings is not None:
            warnings.append(message)
    return truth.records


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _read_mask(cohort_dir: Path, relative: str, explanation: CaseExplanation) -> np.ndarray | None:
    from mmdx.data.imaging import read_image
    from mmdx.data.issues import ImageReadError

    grid = explanation.image_grid
    if grid is None:
        return None
    try:
        mask = read_image(relative, root=cohort_dir)
    except ImageReadError as exc:
        log.warning(
            "ground truth: the lesion mask of %s is skipped: %s", explanation.case_id, exc.issue.message
        )
        return None
    array = np.asarray(mask.array)
    # a 2D image's slice axis carries no voxels: DICOM and NIfTI may disagree on its length harmlessly
    axes = [0, 1, 3] if grid.dims == 2 else [0, 1, 2, 3]
    same_grid = np.allclose(
        np.asarray(mask.affine)[np.ix_(axes, axes)], grid.original_affine[np.ix_(axes, axes)], atol=1e-3
    )
    if array.size == int(np.prod(grid.original_shape)) and same_grid:
        return array.reshape(grid.original_shape) > 0
    resampled = resample_to_reference(array, mask.affine, grid.original_shape, grid.original_affine)
    return resampled > 0


def relevance_mass(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Share of the positive attribution mass inside ``mask`` (Arras et al.'s relevance mass accuracy on
    the positive part of the map); 0 when the map has no positive mass."""
    positive = np.clip(np.asarray(attribution, dtype=np.float64), 0.0, None)
    total = positive.sum()
    return float(positive[np.asarray(mask, dtype=bool)].sum() / total) if total > 0 else 0.0


def pointing_hit(attribution: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the voxel of highest attribution (the first in C order on ties) lies in ``mask``."""
    attribution = np.asarray(attribution)
    peak = np.unravel_index(int(np.argmax(attribution)), attribution.shape)
    return bool(np.asarray(mask, dtype=bool)[peak])


def image_scores(explanation: CaseExplanation, mask: np.ndarray) -> dict[str, Any] | None:
    """Mass share, chance level and pointing-game hit of one case against its lesion ``mask``.

    ``mask``: bool, on the original image grid.
    """
    if explanation.image_map is None or explanation.image_grid is None or not mask.any():
        return None
    original = explanation.image_original
    share = None if original is None else relevance_mass(original, mask)
    footprint = footprint_on_model_grid(mask, explanation.image_grid)
    tolerance = binary_dilation(footprint, structure=np.ones((3,) * footprint.ndim, dtype=bool))
    chance = float(mask.mean())
    return {
        "mass_share": share,
        "chance": chance,
        "lift": None if share is None or chance <= 0 else share / chance,
        "pointing_hit": pointing_hit(explanation.image_map, tolerance),
    }


def tabular_scores(explanation: CaseExplanation, causal: set[str]) -> dict[str, Any] | None:
    """Ranking AUC and top-feature hit of one case (numeric, measured features only)."""
    if explanation.tabular is None:
        return None
    rows = [
        f for f in explanation.tabular if f.kind == "numeric" and not f.missing and f.attribution is not None
    ]
    good = np.asarray([abs(f.attribution) for f in rows if f.key in causal])
    other = np.asarray([abs(f.attribution) for f in rows if f.key not in causal])
    if good.size == 0 or other.size == 0:
        return None
    wins = (good[:, None] > other[None, :]).mean() + 0.5 * (good[:, None] == other[None, :]).mean()
    top = max(rows, key=lambda f: abs(f.attribution))
    return {
        "ranking_auc": float(wins),
        "top_is_causal": top.key in causal,
        "chance_top": good.size / (good.size + other.size),
    }


def text_scores(explanation: CaseExplanation, phrases: Sequence[Mapping]) -> dict[str, Any] | None:
    """Per status (affirmed/negated/any): is the top-|attribution| word inside a planted sentence?"""
    if not explanation.tokens or not phrases:
        return None
    covered = explanation.text_covered_characters or 0
    seen = [p for p in phrases if int(p["span"][1]) <= covered]
    if not seen:
        return None
    spans = explanation.tokens
    top = max(spans, key=lambda s: abs(s.attribution))

    def inside(span, chosen) -> bool:
        return any(span.start < int(p["span"][1]) and span.end > int(p["span"][0]) for p in chosen)

    out: dict[str, Any] = {}
    for status in ("affirmed", "negated", "any"):
        chosen = seen if status == "any" else [p for p in seen if p.get("status") == status]
        if not chosen:
            continue
        out[status] = {
            "hit": inside(top, chosen),
            "chance": float(np.mean([inside(s, chosen) for s in spans])),
        }
        if explanation.phrases:
            top_phrase = max(explanation.phrases, key=lambda p: abs(p.attribution))
            out[status]["phrase_hit"] = inside(top_phrase, chosen)
            out[status]["phrase_chance"] = float(np.mean([inside(p, chosen) for p in explanation.phrases]))
            if status != "any":
                # the direction the finding moves the risk: an affirmed finding up, a negated one down
                sign = 1.0 if status == "affirmed" else -1.0
                pointed = max(explanation.phrases, key=lambda p: sign * p.attribution)
                out[status]["signed_phrase_hit"] = sign * pointed.attribution > 0 and inside(pointed, chosen)
    return out


def case_scores(explanation: CaseExplanation, record: Mapping, cohort_dir: str | Path) -> dict[str, Any]:
    """The scores of one case against its truth ``record``: ``{"image", "tabular", "text"}``, each ``None``
    when the case cannot be scored for that modality (see the module docs)."""
    image = None
    if record.get("lesion") and record.get("mask") and explanation.image_map is not None:
        try:
            mask = _read_mask(Path(cohort_dir), record["mask"], explanation)
        except (MmdxError, ValueError) as exc:  # a mask that cannot be put on the image's grid
            log.warning("ground truth: the lesion mask of %s is skipped: %s", explanation.case_id, exc)
            mask = None
        image = image_scores(explanation, mask) if mask is not None else None
    return {
        "image": image,
        "tabular": tabular_scores(explanation, set(record.get("causal_features") or [])),
        "text": text_scores(explanation, record.get("planted_phrases") or []),
    }


def summarise_scores(
    scores: Mapping[str, Mapping[str, Any]], labels: Mapping[str, float | None], predicted: Mapping[str, int]
) -> dict[str, Any]:
    """Aggregate :func:`case_scores` of many cases (``case_id -> scores``).

    ``labels``: case id -> label; ``predicted``: case id -> 0/1 at the bundle's threshold.
    """
    image_all = [s["image"] for s in scores.values() if s["image"] is not None]
    image_tp = [
        s["image"]
        for c, s in scores.items()
        if s["image"] is not None and labels.get(c) == 1 and predicted.get(c) == 1
    ]
    tabular = [s["tabular"] for s in scores.values() if s["tabular"] is not None]
    text: dict[str, list[dict]] = {"affirmed": [], "negated": [], "any": []}
    for s in scores.values():
        for status, value in (s["text"] or {}).items():
            text[status].append(value)

    def image_summary(rows: list[dict]) -> dict[str, Any]:
        shares = [r["mass_share"] for r in rows if r["mass_share"] is not None]
        return {
            "n_cases": len(rows),
            "mass_share_in_lesion": _mean(shares),
            "mass_share_chance": _mean([r["chance"] for r in rows]),
            "mass_lift": _mean([r["lift"] for r in rows if r.get("lift") is not None]),
            "pointing_game": _mean([float(r["pointing_hit"]) for r in rows]),
        }

    return {
        "image": {
            "lesion_cases": image_summary(image_all),
            "true_positive_lesion_cases": image_summary(image_tp),
            "pointing_tolerance": "1 model voxel (3x3 or 3x3x3 neighbourhood of the lesion footprint)",
        },
        "tabular": {
            "n_cases": len(tabular),
            "ranking_auc_causal_vs_noncausal": _mean([r["ranking_auc"] for r in tabular]),
            "top_feature_causal": _mean([float(r["top_is_causal"]) for r in tabular]),
            "top_feature_causal_chance": _mean([r["chance_top"] for r in tabular]),
        },
        "text": {
            status: {
                "n_cases": len(rows),
                "top_word_in_phrase": _mean([float(r["hit"]) for r in rows]),
                "chance": _mean([r["chance"] for r in rows]),
                "top_phrase_is_planted": _mean([float(r["phrase_hit"]) for r in rows if "phrase_hit" in r]),
                "phrase_chance": _mean([r["phrase_chance"] for r in rows if "phrase_chance" in r]),
                "top_signed_phrase_is_planted": _mean(
                    [float(r["signed_phrase_hit"]) for r in rows if "signed_phrase_hit" in r]
                ),
            }
            for status, rows in text.items()
        },
    }


def score_against_truth(
    explanations: Sequence[CaseExplanation],
    truth: Mapping[str, Mapping],
    cohort_dir: str | Path,
    labels: Mapping[str, float | None],
    predicted: Mapping[str, int],
) -> dict[str, Any]:
    """:func:`case_scores` of every explained case that has a truth record, summarised."""
    scores = {
        e.case_id: case_scores(e, truth[e.case_id], cohort_dir) for e in explanations if e.case_id in truth
    }
    return summarise_scores(scores, labels, predicted)
