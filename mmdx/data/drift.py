"""Cohort summaries without rows, and the drift report that compares a new cohort with the training one.

:func:`summarise_cohort` keeps what a later comparison needs and nothing that identifies a case: the
prevalence; per feature its missingness (overall and by class), mean, spread, a few quantiles and its counts
in quantile bins (overall and by class), every bin merged with its neighbours until it holds at least
:data:`MIN_CELL` cases (no minimum or maximum, no small cell); the modality-presence patterns (patterns
rarer than :data:`MIN_CELL` pooled as ``other``); the length of the notes and the words that occur in at
least :data:`MIN_VOCABULARY_CASES` notes; the units each feature's values were written in; and the image
geometry and intensity fingerprint. Training stores
the summary of its training split in the bundle (``training_summary.json``).

:func:`drift_report` compares the summary of a new cohort with it: prevalence, each feature's distribution
(chi-square test of homogeneity in the training bins, with labels within each class, so that a feature
whose marginal moved only because the prevalence did is not flagged; Holm's correction over the features),
missingness, presence patterns, units, note length and vocabulary, and image geometry and intensity.
Ranked, each with a flag and a plain sentence.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmdx.data.cohort import read_cohort
from mmdx.data.dataset import CaseTable
from mmdx.data.plan import cohort_facts, declared_modality, fingerprint
from mmdx.data.validation import ValidatedCohort
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES
from mmdx.shift import (
    TestResult,
    bin_counts,
    combine_tests,
    holm,
    homogeneity_test,
    merge_small_bins,
    proportion_test,
    quantile_edges,
    standardised_difference,
)

SUMMARY_SCHEMA_VERSION = 1
#: No count below this is stored: bins are merged, rarer presence patterns pooled.
MIN_CELL = 5
#: Quantile bins per feature (before merging small ones).
N_BINS = 10
#: A word enters the stored vocabulary when at least this many notes hold it.
MIN_VOCABULARY_CASES = 10
#: Quantiles stored per feature (no extremes).
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Familywise error rate of the drift flags.
ALPHA = 0.05
#: A median image geometry or intensity this far (relative) from training is flagged.
IMAGE_TOLERANCE = 0.15
#: The vocabulary share may fall this far below training's before it is flagged.
VOCABULARY_TOLERANCE = 0.05

_WORD = re.compile(r"[a-z]+")
_CLASSES = ("0", "1")


def _bins(values: np.ndarray) -> dict[str, list]:
    values = values[np.isfinite(values)]
    n_bins = max(1, min(N_BINS, values.size // MIN_CELL))
    edges = quantile_edges(values, n_bins)
    edges, counts = merge_small_bins(edges, bin_counts(values, edges), MIN_CELL)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def _moments(values: np.ndarray) -> dict[str, float | None]:
    values = values[np.isfinite(values)]
    if values.size < MIN_CELL:
        return {"mean": None, "sd": None}
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0}


def _feature_summary(values: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    observed = np.isfinite(values)
    entry: dict[str, Any] = {
        "n": int(values.size),
        "observed": int(observed.sum()),
        **_moments(values),
        "bins": {"all": _bins(values)},
        "by_class": {},
    }
    if observed.sum() >= 2 * MIN_CELL:
        entry["quantiles"] = {
            f"{q:g}": float(v)
            for q, v in zip(QUANTILES, np.quantile(values[observed], QUANTILES), strict=True)
        }
    for c in _CLASSES:
        part = values[labels == float(c)]
        entry["by_class"][c] = {
            "n": int(part.size),
            "observed": int(np.isfinite(part).sum()),
            **_moments(part),
            "bins": _bins(part),
        }
    return entry


def _patterns(presence: np.ndarray) -> Counter:
    return Counter(
        "+".join(m.value for m, p in zip(MODALITIES, row, strict=True) if p) or "none" for row in presence
    )


def _notes_summary(texts: Sequence[str | None]) -> dict[str, Any]:
    words = [_WORD.findall(t.lower()) for t in texts if t]
    lengths = np.array([len(w) for w in words], dtype=np.float64)
    document_frequency = Counter(word for w in words for word in set(w))
    vocabulary = sorted(w for w, k in document_frequency.items() if k >= MIN_VOCABULARY_CASES)
    known = set(vocabulary)
    tokens = sum(len(w) for w in words)
    share = sum(word in known for w in words for word in w) / tokens if tokens else None
    return {
        "n_notes": len(words),
        "length_words": {**_moments(lengths), "bins": _bins(lengths)},
        "vocabulary": vocabulary,
        "in_vocabulary_share": share,
    }


def _image_summary(cohort: ValidatedCohort, case_ids: list[str]) -> dict[str, Any] | None:
    facts = cohort_facts(cohort, case_ids)
    if len(facts) < MIN_CELL:
        return None
    data = fingerprint(facts.values(), declared_modality(cohort)).to_dict()
    out: dict[str, Any] = {"n_images": data.get("n_images", 0), "geometry": {}, "intensity": {}}
    for dims, entry in data.get("geometry", {}).items():
        for what in ("fov_mm", "spacing", "shape"):
            if entry.get(what):
                out["geometry"][f"{dims} {what}"] = entry[what]["median"]
    for family, entry in data.get("modalities", {}).items():
        for key, value in (entry.get("percentiles_median") or {}).items():
            out["intensity"][f"{family} {key}"] = value
    return out


def _units_summary(cohort: ValidatedCohort, case_ids: list[str]) -> dict[str, dict[str, int]] | None:
    """Per feature, how many of the values used were written in each unit (units rarer than MIN_CELL
    pooled as ``other``), from the raw observation rows validation kept; None without observations."""
    used = getattr(cohort, "observations", None)
    root = getattr(cohort, "root", None)
    if used is None or root is None or used.empty or "row" not in used.columns:
        return None
    try:
        raw = read_cohort(root).observations
    except (MmdxError, OSError):
        return None
    if raw is None or "unit" not in raw.columns:
        return None
    used = used[used["case_id"].isin(set(case_ids))]
    units = raw["unit"].to_numpy()[used["row"].to_numpy(dtype=int) - 1]
    counts: dict[str, Counter] = {}
    for feature, unit in zip(used["feature"], units, strict=True):
        try:
            name = cohort.catalogue[feature].resolve_unit(unit)
        except Exception:  # validation kept the row, so this is only a spelling the catalogue maps elsewhere
            name = str(unit)
        counts.setdefault(feature, Counter())[name] += 1
    out = {}
    for feature, counter in sorted(counts.items()):
        kept = {u: n for u, n in sorted(counter.items()) if n >= MIN_CELL}
        other = sum(n for u, n in counter.items() if u not in kept)
        out[feature] = {**kept, **({"other": other} if other else {})}
    return out


def summarise_cohort(
    cohort: ValidatedCohort, table: CaseTable, columns: Sequence[str], index: np.ndarray | None = None
) -> dict[str, Any]:
    """The summary of the cases ``index`` of ``table`` (default: all); ``columns`` names the columns of
    ``table.canonical`` (the bundle's tabular columns). Labels may be missing (NaN): the class-wise parts
    then hold only the labelled cases."""
    index = np.arange(len(table.case_ids)) if index is None else np.asarray(index, dtype=int)
    labels = table.labels[index].astype(np.float64)
    labelled = np.isfinite(labels)
    features = {
        name: _feature_summary(table.canonical[index, j], labels)
        for j, name in enumerate(columns)
        if not name.endswith(".hours_since")
    }
    patterns = _patterns(table.presence[index])
    kept = {k: v for k, v in patterns.items() if v >= MIN_CELL}
    other = sum(v for k, v in patterns.items() if k not in kept)
    case_ids = [table.case_ids[i] for i in index]
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "min_cell": MIN_CELL,
        "n": int(index.size),
        "n_labelled": int(labelled.sum()),
        "n_positive": int((labels[labelled] == 1).sum()),
        "features": features,
        "presence_patterns": {**dict(sorted(kept.items())), **({"other": other} if other else {})},
        "notes": _notes_summary([table.texts[i] for i in index]),
        "image": _image_summary(cohort, case_ids),
        "units": _units_summary(cohort, case_ids),
    }


# --------------------------------------------------------------------------------------------------------
# the drift report


def _prevalence(summary: dict) -> float | None:
    n = summary.get("n_labelled", 0)
    return summary["n_positive"] / n if n else None


def _feature_test(train: dict, new: dict, labelled: bool) -> tuple[TestResult, str]:
    if labelled:
        tests = []
        for c in _CLASSES:
            edges = np.asarray(train["by_class"][c]["bins"]["edges"])
            counts_new = _recount(new, c, edges)
            if counts_new is not None:
                tests.append(homogeneity_test(np.asarray(train["by_class"][c]["bins"]["counts"]), counts_new))
        return combine_tests(tests), "within each class"
    edges = np.asarray(train["bins"]["all"]["edges"])
    return homogeneity_test(
        np.asarray(train["bins"]["all"]["counts"]), _recount(new, None, edges)
    ), "marginal"


def _recount(new: dict, cls: str | None, edges: np.ndarray) -> np.ndarray | None:
    """The new cohort's counts in the training bins, from its raw values (kept in memory, never stored)."""
    values = new["_values"] if cls is None else new["_values"][new["_labels"] == float(cls)]
    return bin_counts(values, edges) if np.isfinite(values).any() else None


def _feature_rows(training: dict, new: dict, labelled: bool) -> list[dict[str, Any]]:
    rows = []
    for name, train in training["features"].items():
        if name not in new["features"]:
            continue
        current = new["features"][name]
        result, how = _feature_test(train, current, labelled)
        d = (
            standardised_difference(train["mean"], train["sd"], current["mean"], current["sd"])
            if train["mean"] is not None and current["mean"] is not None
            else math.nan
        )
        within = {
            c: standardised_difference(
                train["by_class"][c]["mean"],
                train["by_class"][c]["sd"],
                current["by_class"][c]["mean"],
                current["by_class"][c]["sd"],
            )
            if labelled
            and train["by_class"][c]["mean"] is not None
            and current["by_class"][c]["mean"] is not None
            else None
            for c in _CLASSES
        }
        rows.append(
            {
                "feature": name,
                "test": f"chi-square of homogeneity in the training quantile bins, {how}",
                **result.to_dict(),
                "standardised_difference": d,
                "standardised_difference_by_class": within,
                "training_mean": train["mean"],
                "external_mean": current["mean"],
            }
        )
    return rows


def _missingness_rows(training: dict, new: dict) -> list[dict[str, Any]]:
    rows = []
    for name, train in training["features"].items():
        current = new["features"].get(name)
        if current is None or not train["n"] or not current["n"]:
            continue
        result = proportion_test(train["observed"], train["n"], current["observed"], current["n"])
        rows.append(
            {
                "feature": name,
                "training_missing": 1 - train["observed"] / train["n"],
                "external_missing": 1 - current["observed"] / current["n"],
                **result.to_dict(),
            }
        )
    return rows


def _adjust(rows: list[dict[str, Any]], alpha: float) -> None:
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_adjusted"] = adjusted
        row["flag"] = bool(math.isfinite(adjusted) and adjusted < alpha)
    rows.sort(key=lambda r: (not r["flag"], r["p_value"] if math.isfinite(r["p_value"]) else 2.0))


def _presence(training: dict, new: dict, alpha: float) -> dict[str, Any]:
    train = training["presence_patterns"]
    names = sorted(train)
    current: Counter = Counter()
    for pattern, count in new.get("_patterns", new["presence_patterns"]).items():
        current[pattern if pattern in train else "other"] += count
    names = sorted(set(names) | set(current))
    result = homogeneity_test(
        np.array([train.get(k, 0) for k in names]), np.array([current[k] for k in names])
    )
    n_train, n_new = sum(train.values()), sum(current.values())
    return {
        "patterns": {
            k: {"training": train.get(k, 0) / n_train, "external": current[k] / n_new if n_new else None}
            for k in names
        },
        **result.to_dict(),
        "flag": bool(math.isfinite(result.p_value) and result.p_value < alpha),
    }


def _notes(training: dict, new: dict, alpha: float) -> dict[str, Any] | None:
    train, current = training.get("notes"), new.get("notes")
    if not train or not current or not train["n_notes"] or not current["n_notes"]:
        return None
    edges = np.asarray(train["length_words"]["bins"]["edges"])
    result = homogeneity_test(
        np.asarray(train["length_words"]["bins"]["counts"]), bin_counts(new["_lengths"], edges)
    )
    known = set(train["vocabulary"])
    tokens = [w for words in new["_words"] for w in words]
    share = sum(w in known for w in tokens) / len(tokens) if tokens else None
    drop = (train["in_vocabulary_share"] or 0.0) - (share or 0.0)
    return {
        "length_words": {
            "training_mean": train["length_words"]["mean"],
            "external_mean": current["length_words"]["mean"],
            **result.to_dict(),
            "flag": bool(math.isfinite(result.p_value) and result.p_value < alpha),
        },
        "vocabulary": {
            "training_in_vocabulary_share": train["in_vocabulary_share"],
            "external_in_vocabulary_share": share,
            "tolerance": VOCABULARY_TOLERANCE,
            "flag": bool(share is not None and drop > VOCABULARY_TOLERANCE),
        },
    }


def _units(training: dict, new: dict) -> list[dict[str, Any]] | None:
    """Per feature, the units at training and here; a unit never seen at training is flagged (its values
    were converted by the catalogue: check that the conversion holds for this site)."""
    train, current = training.get("units"), new.get("units")
    if not train or not current:
        return None
    rows = []
    for feature, units in current.items():
        seen = train.get(feature, {})
        n_train, n_new = sum(seen.values()), sum(units.values())
        unseen = sorted(u for u in units if u not in seen and u != "other")
        rows.append(
            {
                "feature": feature,
                "training": {u: n / n_train for u, n in seen.items()} if n_train else {},
                "external": {u: n / n_new for u, n in units.items()},
                "unseen": unseen,
                "flag": bool(unseen),
            }
        )
    rows.sort(key=lambda r: (not r["flag"], r["feature"]))
    return rows


def _image(training: dict, new: dict) -> dict[str, Any] | None:
    train, current = training.get("image"), new.get("image")
    if not train or not current:
        return None
    rows = []
    for part in ("geometry", "intensity"):
        for key, value in train[part].items():
            other = current[part].get(key)
            if other is None:
                continue
            a = np.atleast_1d(np.asarray(value, dtype=float))
            b = np.atleast_1d(np.asarray(other, dtype=float))
            if a.shape != b.shape:
                continue
            scale = (
                np.maximum(np.abs(a), 1e-6)
                if part == "geometry"
                else max(float(np.ptp(list(train[part].values()))), 1e-6)
            )
            relative = float(np.max(np.abs(b - a) / scale))
            rows.append(
                {
                    "what": f"{part}: {key}",
                    "training": a.tolist(),
                    "external": b.tolist(),
                    "relative_difference": relative,
                    "flag": relative > IMAGE_TOLERANCE,
                }
            )
    return {"tolerance": IMAGE_TOLERANCE, "rows": rows}


def with_values(
    summary: dict, table: CaseTable, columns: Sequence[str], index: np.ndarray | None = None
) -> dict:
    """``summary`` plus the raw values the comparison re-bins (in memory only; :func:`drift_report` drops
    them from what it returns)."""
    index = np.arange(len(table.case_ids)) if index is None else np.asarray(index, dtype=int)
    labels = table.labels[index].astype(np.float64)
    out = {**summary, "features": {}}
    for j, name in enumerate(columns):
        if name in summary["features"]:
            out["features"][name] = {
                **summary["features"][name],
                "_values": table.canonical[index, j].astype(np.float64),
                "_labels": labels,
            }
    words = [_WORD.findall(t.lower()) for t in (table.texts[i] for i in index) if t]
    out["_patterns"] = _patterns(table.presence[index])
    out["_words"] = words
    out["_lengths"] = np.array([len(w) for w in words], dtype=np.float64)
    return out


def _messages(report: dict[str, Any]) -> list[str]:
    out = []
    prevalence = report["prevalence"]
    if prevalence.get("flag"):
        out.append(
            f"The outcome is {'rarer' if prevalence['external'] < prevalence['training'] else 'more common'} here "
            f"({prevalence['external']:.3f} against {prevalence['training']:.3f} at training): probabilities "
            "calibrated at home are off by the prior; adjust for the prevalence."
        )
    caveat = "" if report["labelled"] else " (marginal: part of it may be the prevalence shift)"
    for row in report["features"]:
        if row["flag"]:
            out.append(
                f"{row['feature']} is distributed differently{caveat}: mean {row['external_mean']:.4g} against "
                f"{row['training_mean']:.4g} at training (standardised difference "
                f"{row['standardised_difference']:+.2f}, Holm-adjusted p = {row['p_adjusted']:.2g})."
            )
    for row in report["missingness"]:
        if row["flag"]:
            out.append(
                f"{row['feature']} is missing in {row['external_missing']:.0%} of cases against "
                f"{row['training_missing']:.0%} at training."
            )
    if report["presence"]["flag"]:
        out.append("The mix of modalities present per case differs from training.")
    notes = report.get("notes") or {}
    if notes.get("length_words", {}).get("flag"):
        out.append("Notes differ in length from training.")
    if notes.get("vocabulary", {}).get("flag"):
        out.append(
            "Notes use words the training notes did not: the text encoder reads unfamiliar vocabulary."
        )
    for row in report.get("units") or []:
        if row["flag"]:
            out.append(
                f"{row['feature']} arrives in {', '.join(row['unseen'])}, a unit never seen at training: its "
                "values were converted by the feature catalogue; check that the conversion holds here."
            )
    for row in (report.get("image") or {}).get("rows", []):
        if row["flag"]:
            out.append(f"Images differ from training in {row['what']} ({row['relative_difference']:.0%}).")
    return out


def domain_auroc(training: np.ndarray, new: np.ndarray, seed: int = 0, folds: int = 5) -> float:
    """How well a classifier tells the training cases from the new ones, as a cross-validated AUROC (0.5: no
    difference it can find). ``training`` and ``new`` are ``[n, k]`` inputs (canonical values with NaN for
    missing, presence flags); a gradient-boosted tree ensemble that takes missing values as they are."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.vstack([training, new]).astype(np.float64)
    y = np.concatenate([np.zeros(len(training)), np.ones(len(new))])
    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=split, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def drift_report(
    training: dict,
    new: dict,
    labelled: bool,
    alpha: float = ALPHA,
    estimated_prevalence: float | None = None,
) -> dict[str, Any]:
    """Compare ``new`` (a summary from :func:`with_values`) with the training summary. ``labelled``: test
    each feature within each class (the new cohort's labels are known); otherwise marginally, with the
    caveat that a marginal shift may come from the prevalence alone. ``estimated_prevalence``: the new
    cohort's prevalence estimated without labels, reported when its labels are unknown."""
    train_prev = _prevalence(training)
    new_prev = _prevalence(new) if labelled else None
    prevalence: dict[str, Any] = {
        "training": train_prev,
        "external": new_prev,
        "estimated_without_labels": estimated_prevalence,
    }
    if labelled and train_prev is not None and new_prev is not None:
        result = proportion_test(
            training["n_positive"], training["n_labelled"], new["n_positive"], new["n_labelled"]
        )
        prevalence.update(
            result.to_dict(), flag=bool(math.isfinite(result.p_value) and result.p_value < alpha)
        )
    elif estimated_prevalence is not None and train_prev is not None:
        prevalence.update(external=estimated_prevalence, flag=abs(estimated_prevalence - train_prev) > 0.05)
    features = _feature_rows(training, new, labelled)
    _adjust(features, alpha)
    marginal = _feature_rows(training, new, False) if labelled else []
    _adjust(marginal, alpha)
    missingness = _missingness_rows(training, new)
    _adjust(missingness, alpha)
    report: dict[str, Any] = {
        "alpha": alpha,
        "correction": f"Holm over the {len(features)} features (familywise error {alpha:g}); "
        f"missingness: Holm over its {len(missingness)} tests",
        "labelled": labelled,
        "caveat": None
        if labelled
        else "without labels, features are compared marginally: a feature whose distribution differs "
        "between classes moves when the prevalence does, and is flagged though its class-wise "
        "distributions did not change",
        "n_training": training["n"],
        "n_external": new["n"],
        "prevalence": prevalence,
        "features": features,
        # with labels, the marginal tests too: what a label-free report would have flagged
        "features_marginal": [
            {k: row[k] for k in ("feature", "statistic", "df", "p_value", "p_adjusted", "flag")}
            for row in marginal
        ],
        "missingness": missingness,
        "presence": _presence(training, new, alpha),
        "notes": _notes(training, new, alpha),
        "image": _image(training, new),
        "units": _units(training, new),
    }
    report["flags"] = _messages(report)
    return report
