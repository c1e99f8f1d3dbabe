"""Training strategies against modality imbalance, scored on a large extra test cohort.

    .venv/bin/python -m benchmarks.balance TRAIN_COHORT TEST_COHORT [TEST_COHORT ...]
        [--config configs/demo.yaml] [--seeds 0 1 2] [--strategies joint staged ogm_ge branch_stopping]
        [--fusions gated_attention concat] [--unimodal image] [--out /work/data/balance/bench]
        [--jobs 2] [--threads 1] [--set KEY=VALUE ...] [--resamples 1000] [--name results]

Each variant trains the config on TRAIN_COHORT (``mmdx train`` in a fresh process, ``--set seed=S``):
every strategy of :data:`mmdx.training.strategies.STRATEGIES` named by ``--strategies`` (and
``branch_stopping``: ``joint`` with ``train.early_stopping=branches``; ``augment``: ``joint`` with the
image augmentations of ``train.augment`` on; ``staged_augment``: ``staged`` with them; ``contrastive`` and
``staged_augment_contrastive``: ``joint`` and ``staged_augment`` after ``train.pretrain: contrastive``;
``contrastive_tabular``: ``contrastive`` with the tabular encoder paired too) with each fusion of
``--fusions``;
``--unimodal image`` adds the image-only model (the joint strategy without values and notes). Every trained
bundle is then run, in this process, on every case of the TEST_COHORTs -- other cohorts of the same
generator with other seeds -- intact and with each modality removed (the audit's definition of "AUROC lost
when removed"), keeping each encoder's own head's logit.

Scored on the labelled, usable test cases, pooled over the test cohorts, per run: the test AUROC, each
encoder's own AUROC, the AUROC lost when each modality is removed (paired interval), calibration slope and
intercept of the calibrated probabilities (bootstrap intervals), ECE (15 bins) beside the ECE a perfectly
calibrated model gets on the same cases (labels drawn from the model's own probabilities; mean and 95%
range); the best validation AUROC (what a default may be chosen on); the Bayes-optimal AUROC from
``ground_truth/``; paired stratified bootstrap intervals of each variant minus ``joint`` with the same
fusion and seed (also of each encoder's own AUROC), of ``gated_attention`` minus ``concat`` per strategy
and seed, and of the Bayes posterior minus each run. Finished runs and scores are reused (delete a run folder to redo it). Prints a Markdown
report and writes ``NAME.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.plan_fov import oracle_scores

REPO = Path(__file__).resolve().parents[1]

#: strategies that are a train.* setting rather than a registered strategy
EXTRA_STRATEGIES = {
    "branch_stopping": ["train.strategy=joint", "train.early_stopping=branches"],
    "augment": [
        "train.strategy=joint",
        "train.augment.affine=0.5",
        "train.augment.elastic=0.2",
        "train.augment.intensity=0.5",
        "train.augment.noise=0.5",
    ],
}
#: joint training with every augmentation off, whatever the config sets (demo.yaml before its default changed)
EXTRA_STRATEGIES["joint_no_augment"] = [
    "train.strategy=joint",
    *[f"train.augment.{k}=0" for k in ("affine", "elastic", "intensity", "noise")],
]
EXTRA_STRATEGIES["staged_augment"] = [
    "train.strategy=staged",
    *[s for s in EXTRA_STRATEGIES["augment"] if s.startswith("train.augment")],
]
#: cross-modal contrastive pretraining of the encoders (train.pretrain) before the strategy
EXTRA_STRATEGIES["contrastive"] = ["train.strategy=joint", "train.pretrain=contrastive"]
EXTRA_STRATEGIES["contrastive_tabular"] = [
    *EXTRA_STRATEGIES["contrastive"],
    "train.contrastive.include_tabular=true",
]
EXTRA_STRATEGIES["staged_augment_contrastive"] = [
    *EXTRA_STRATEGIES["staged_augment"],
    "train.pretrain=contrastive",
]
#: the notes' tokens inside a negation's scope marked (data.text.negation)
EXTRA_STRATEGIES["staged_augment_negation"] = [*EXTRA_STRATEGIES["staged_augment"], "data.text.negation=true"]
UNIMODAL = {
    "image": ["model.tabular=null", "model.text=null"],
    "tabular": ["model.image=null", "model.text=null"],
    "text": ["model.image=null", "model.tabular=null"],
}
ECE_BINS = 15


def variant_overrides(strategy: str, fusion: str) -> list[str]:
    """The ``--set`` overrides of a variant: a strategy (or ``unimodal-<modality>``) and a fusion."""
    from mmdx.models.fusion import FUSIONS
    from mmdx.training.strategies import STRATEGIES

    sets = [f"model.fusion.name={FUSIONS.get(fusion).name}"]
    if strategy.startswith("unimodal-"):
        return [*sets, *UNIMODAL[strategy.removeprefix("unimodal-")]]
    if strategy in EXTRA_STRATEGIES:
        return [*sets, *EXTRA_STRATEGIES[strategy]]
    return [*sets, f"train.strategy={STRATEGIES.get(strategy).name}"]


def _mmdx(*args: str) -> list[str]:
    return ["nice", "-n", "10", sys.executable, "-m", "pipelines.cli", *args]


def train_one(
    strategy: str,
    fusion: str,
    seed: int,
    train: Path,
    config: Path,
    out: Path,
    threads: int,
    extra: list[str],
) -> Path:
    """Train one variant and seed (reused when its bundle exists); returns the run folder."""
    run = out / f"{strategy}-{fusion}-seed{seed}"
    if (run / "bundle" / "manifest.json").is_file():
        return run
    if run.exists():
        subprocess.run(["rm", "-rf", str(run)], check=True)
    sets = [*variant_overrides(strategy, fusion), f"seed={seed}", f"train.threads={threads}", *extra]
    cmd = _mmdx("train", "--config", str(config), "--cohort", str(train), "--out", str(run), "--quiet")
    for item in sets:
        cmd += ["--set", item]
    started = time.perf_counter()
    with (out / f"{run.name}.log").open("a", encoding="utf-8") as fh:
        subprocess.run(cmd, stdout=fh, stderr=fh, check=True, cwd=REPO)
    (run / "benchmark_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - started}))
    return run


def cohort_outputs(bundle, test: Path, inputs=None) -> dict[str, np.ndarray]:
    """The bundle's outputs on every usable case of one test cohort: case ids (``cohort-name/case_id``),
    labels, calibrated probabilities intact and with each modality removed, and each encoder's own logit
    (NaN where the case lacks the modality). ``inputs``: the bundle's ``CohortInputs`` for ``test`` when
    already prepared (default: ``mmdx.predict.prepare_inputs``)."""
    from mmdx.keys import MODALITIES
    from mmdx.predict import predict_with_removed, prepare_inputs

    inputs = inputs or prepare_inputs(bundle, test, workers=1)
    intact = predict_with_removed(bundle.model, inputs.dataset, None)
    found = {
        "case_id": np.array([f"{test.name}/{c}" for c in intact.case_ids]),
        "label": intact.labels,
        "p": np.asarray(bundle.calibration.transform(intact.logits), dtype=np.float64),
    }
    for column, modality in enumerate(MODALITIES):
        if modality not in bundle.preprocessing.modalities:
            continue
        if intact.aux_logits is not None:
            own = intact.aux_logits[:, column].astype(np.float64)
            found[f"own_{modality}"] = np.where(intact.presence[:, column], own, np.nan)
        if len(bundle.preprocessing.modalities) > 1:
            removed = predict_with_removed(bundle.model, inputs.dataset, modality)
            found[f"without_{modality}"] = np.asarray(
                bundle.calibration.transform(removed.logits), dtype=np.float64
            )
    return found


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_outputs(run: Path, tests: list[Path], cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """The bundle's outputs (:func:`cohort_outputs`) on the pooled test cohorts.

    Cached in ``RUN/test_outputs.npz``; with ``cache_dir`` (for runs that are not to be written to), one
    file per test cohort in ``cache_dir/<run folder>/<cohort folder>.npz`` instead, so an interrupted
    scoring keeps the cohorts already predicted."""
    if cache_dir is None:
        cached = run / "test_outputs.npz"
        if cached.is_file():
            return _load_npz(cached)
    files = {test: cache_dir / run.name / f"{test.name}.npz" for test in tests} if cache_dir else {}
    bundle = None
    parts: dict[str, list[np.ndarray]] = {}
    for test in tests:
        if test in files and files[test].is_file():
            found = _load_npz(files[test])
        else:
            from mmdx.bundle import load_bundle

            bundle = bundle or load_bundle(run / "bundle")
            found = cohort_outputs(bundle, test)
            if test in files:
                files[test].parent.mkdir(parents=True, exist_ok=True)
                np.savez(files[test], **found)
        for key, value in found.items():
            parts.setdefault(key, []).append(value)
    outputs = {k: np.concatenate(v) for k, v in parts.items()}
    if cache_dir is None:
        np.savez(run / "test_outputs.npz", **outputs)
    return outputs


def reference_ece(p: np.ndarray, draws: int = 200, seed: int = 0) -> dict[str, float]:
    """ECE (15 bins) of a perfectly calibrated model with these probabilities on this many cases: labels
    drawn from ``p`` itself; mean and 95% range over ``draws``."""
    from mmdx.metrics import expected_calibration_error

    rng = np.random.default_rng(seed)
    values = [
        expected_calibration_error((rng.random(p.size) < p).astype(int), p, n_bins=ECE_BINS)
        for _ in range(draws)
    ]
    low, high = np.quantile(values, [0.025, 0.975])
    return {"mean": float(np.mean(values)), "low": float(low), "high": float(high)}


def _interval(estimate) -> dict:
    return {"estimate": estimate.estimate, "low": estimate.low, "high": estimate.high}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(z / 2.0))


def calibration_summary(y: np.ndarray, p: np.ndarray, resamples: int, seed: int) -> dict:
    """Logistic recalibration slope and intercept (stratified bootstrap intervals), the ECE (15 bins) and the
    ECE of a perfectly calibrated model with the same probabilities (:func:`reference_ece`)."""
    from mmdx.metrics import expected_calibration_error
    from mmdx.statistics import bootstrap_ci, calibration_slope_intercept

    def slope(yy, pp):
        return calibration_slope_intercept(yy, pp).slope

    def intercept(yy, pp):
        return calibration_slope_intercept(yy, pp).intercept

    return {
        "slope": _interval(bootstrap_ci(slope, y, p, resamples, seed=seed)),
        "intercept": _interval(bootstrap_ci(intercept, y, p, resamples, seed=seed)),
        "ece": expected_calibration_error(y, p, n_bins=ECE_BINS),
        "ece_reference": reference_ece(p, seed=seed),
    }


def score_run(
    run: Path, out: dict[str, np.ndarray], cases: np.ndarray, y: np.ndarray, resamples: int
) -> dict:
    """One run's scores on the common test cases."""
    from mmdx.metrics import auroc
    from mmdx.statistics import paired_bootstrap_difference

    position = {c: i for i, c in enumerate(out["case_id"])}
    rows = np.array([position[c] for c in cases])
    p = out["p"][rows]
    summary = json.loads((run / "training.json").read_text())
    result = summary["result"]
    timed = run / "benchmark_seconds.json"  # written by the benchmarks that train the run
    if timed.is_file():
        seconds = json.loads(timed.read_text())["seconds"]
    else:  # a run trained with `mmdx train`: the training time its model card states
        seconds = json.loads((run / "bundle" / "card.json").read_text())["training"]["seconds"]
    scored = {
        "auroc": auroc(y, p),
        "best_val_auroc": result["best_val_auroc"],
        "val_branches": {m: b["val_auroc"] for m, b in (result.get("branches") or {}).items()},
        "epochs_run": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "train_seconds": seconds,
        "own": {},
        "lost_when_removed": {},
        "calibration": calibration_summary(y, p, max(200, resamples // 4), seed=0),
        "cross_validated_auroc": _cross_validated_auroc(run),
    }
    for key in out:
        if key.startswith("own_"):
            own = out[key][rows]
            have = ~np.isnan(own)
            scored["own"][key.removeprefix("own_")] = auroc(y[have], _sigmoid(own[have]))
        if key.startswith("without_"):
            diff = paired_bootstrap_difference(auroc, y, p, out[key][rows], n_resamples=resamples, seed=0)
            scored["lost_when_removed"][key.removeprefix("without_")] = _interval(diff)
    return scored


def seed_mean_auroc(
    probability: dict[tuple[str, str, int], np.ndarray], y: np.ndarray, resamples: int
) -> dict[str, dict]:
    """Per variant (strategy and fusion) with more than one seed: the test AUROC averaged over its seeds,
    with a 95% interval from a stratified bootstrap of the test cases (each replicate resamples the cases
    once for every seed), so a target on the seed mean is judged against its interval."""
    from mmdx.metrics import auroc

    variants: dict[tuple[str, str], list[np.ndarray]] = {}
    for (strategy, fusion, _), p in probability.items():
        variants.setdefault((strategy, fusion), []).append(p)
    rng = np.random.default_rng(0)
    strata = [np.flatnonzero(y == value) for value in (0, 1)]
    draws = [np.concatenate([rng.choice(m, len(m)) for m in strata]) for _ in range(resamples)]
    out = {}
    for (strategy, fusion), ps in variants.items():
        if len(ps) < 2:
            continue
        estimate = float(np.mean([auroc(y, p) for p in ps]))
        replicates = [np.mean([auroc(y[rows], p[rows]) for p in ps]) for rows in draws]
        out[f"{strategy}-{fusion}"] = {**_percentile_interval(estimate, replicates), "seeds": len(ps)}
    return out


def _cross_validated_auroc(run: Path) -> float | None:
    from mmdx.run import RunPaths
    from mmdx.training.cross_fit import OutOfFold

    record = RunPaths(run).read_out_of_fold()
    return OutOfFold.from_dict(record).auroc() if record is not None else None


def own_vs_joint(
    own: dict[tuple[str, str, int], dict[str, np.ndarray]],
    y: np.ndarray,
    resamples: int,
    baseline: str = "joint",
) -> dict[str, dict[str, dict]]:
    """Per run other than the ``baseline`` variant, per modality: its encoder's own test AUROC minus the
    baseline's with the same fusion and seed, on the cases that have the modality (paired stratified bootstrap).
    ``own[key][modality]``: each case's own logit, NaN where the case lacks the modality."""
    from mmdx.metrics import auroc
    from mmdx.statistics import paired_bootstrap_difference

    found: dict[str, dict[str, dict]] = {}
    for (strategy, fusion, seed), logits in own.items():
        joint = own.get((baseline, fusion, seed))
        if strategy == baseline or strategy.startswith("unimodal-") or joint is None:
            continue
        name = f"{strategy}-{fusion}-seed{seed}"
        for modality in sorted(set(logits) & set(joint)):
            a, b = logits[modality], joint[modality]
            have = ~np.isnan(a) & ~np.isnan(b)
            diff = paired_bootstrap_difference(
                auroc, y[have], _sigmoid(a[have]), _sigmoid(b[have]), n_resamples=resamples, seed=seed
            )
            found.setdefault(name, {})[modality] = _interval(diff)
    return found


def score(
    runs: dict[tuple[str, str, int], Path],
    tests: list[Path],
    resamples: int,
    cache_dir: Path | None = None,
    baseline: str = "joint",
) -> dict:
    import pandas as pd

    from mmdx.metrics import auroc
    from mmdx.statistics import paired_bootstrap_difference

    outputs = {key: test_outputs(run, tests, cache_dir) for key, run in runs.items()}
    oracle = pd.concat([oracle_scores(test) for test in tests])
    common = set(oracle.index)
    for out in outputs.values():
        common &= {c for c, label in zip(out["case_id"], out["label"], strict=True) if not math.isnan(label)}
    cases = np.array(sorted(common))
    first = next(iter(outputs.values()))
    position = {c: i for i, c in enumerate(first["case_id"])}
    y = first["label"][[position[c] for c in cases]].astype(int)
    bayes = _sigmoid(oracle.loc[cases, "oracle_all"].to_numpy())
    results: dict = {
        "n_cases": int(len(cases)),
        "n_positive": int(y.sum()),
        "bayes_auroc": auroc(y, bayes),
        "oracle_image_auroc": auroc(y, _sigmoid(oracle.loc[cases, "oracle_image"].to_numpy())),
        "bayes_calibration": {"ece": None, "ece_reference": reference_ece(bayes)},
        "runs": {},
        "vs_joint": {},
        "gated_minus_concat": {},
        "bayes_minus_run": {},
    }
    probability, own = {}, {}
    for key, run in runs.items():
        strategy, fusion, seed = key
        name = f"{strategy}-{fusion}-seed{seed}"
        out = outputs[key]
        rows = np.array([{c: i for i, c in enumerate(out["case_id"])}[c] for c in cases])
        probability[key] = out["p"][rows]
        own[key] = {k.removeprefix("own_"): out[k][rows] for k in out if k.startswith("own_")}
        results["runs"][name] = {"strategy": strategy, "fusion": fusion, "seed": seed}
        results["runs"][name].update(score_run(run, out, cases, y, resamples))
        gap = paired_bootstrap_difference(auroc, y, bayes, probability[key], n_resamples=resamples, seed=seed)
        results["bayes_minus_run"][name] = _interval(gap)
    for (strategy, fusion, seed), p in probability.items():
        name = f"{strategy}-{fusion}-seed{seed}"
        joint = probability.get((baseline, fusion, seed))
        if strategy != baseline and not strategy.startswith("unimodal-") and joint is not None:
            diff = paired_bootstrap_difference(auroc, y, p, joint, n_resamples=resamples, seed=seed)
            results["vs_joint"][name] = _interval(diff)
        concat = probability.get((strategy, "concat", seed))
        if fusion == "gated_attention" and concat is not None:
            diff = paired_bootstrap_difference(auroc, y, p, concat, n_resamples=resamples, seed=seed)
            results["gated_minus_concat"][f"{strategy}-seed{seed}"] = _interval(diff)
    results["baseline"] = baseline
    results["vs_joint_cross_validated"] = cross_validated_differences(runs, resamples, baseline)
    results["own_vs_joint"] = own_vs_joint(own, y, resamples, baseline)
    results["seed_mean_auroc"] = seed_mean_auroc(probability, y, resamples)
    return results


def cross_validated_differences(
    runs: dict[tuple[str, str, int], Path], resamples: int, baseline: str = "joint"
) -> dict[str, dict]:
    """For runs trained with ``train.cross_validation_folds``: each variant's cross-validated AUROC (the mean
    of its fold models' AUROCs on their held-out folds) minus the ``baseline`` variant's with the same fusion
    and seed, per
    seed and averaged over the seeds both have, with a stratified bootstrap over the training cases (the
    same cases in every seed; each replicate resamples them once for all seeds). Only the training cohort is
    used, so a default may be chosen on these."""
    from mmdx.run import RunPaths
    from mmdx.training.cross_fit import OutOfFold

    folds = {}
    for key, run in runs.items():
        record = RunPaths(run).read_out_of_fold()
        if record is not None:
            folds[key] = OutOfFold.from_dict(record)
    pairs: dict[tuple[str, str], list[tuple[int, OutOfFold, OutOfFold]]] = {}
    for (strategy, fusion, seed), record in folds.items():
        joint = folds.get((baseline, fusion, seed))
        if strategy != baseline and joint is not None and joint.case_ids == record.case_ids:
            pairs.setdefault((strategy, fusion), []).append((seed, record, joint))
    out = {}
    for (strategy, fusion), seeded in pairs.items():
        labels = seeded[0][1].labels
        rng = np.random.default_rng(0)
        strata = [np.flatnonzero(labels == value) for value in (0, 1)]
        draws = [
            np.sort(np.concatenate([rng.choice(members, len(members)) for members in strata]))
            for _ in range(resamples)
        ]
        per_seed = {}
        for seed, record, joint in seeded:
            per_seed[seed] = [_cv_difference(record, joint, rows) for rows in draws]
            estimate = _cv_difference(record, joint, np.arange(len(labels)))
            out[f"{strategy}-{fusion}-seed{seed}"] = _percentile_interval(estimate, per_seed[seed])
        if len(seeded) > 1:
            estimate = float(np.mean([_cv_difference(r, j, np.arange(len(labels))) for _, r, j in seeded]))
            mean = np.mean(np.array(list(per_seed.values())), axis=0)
            key = f"{strategy}-{fusion}-seeds{','.join(str(s) for s, _, _ in seeded)}"
            out[key] = _percentile_interval(estimate, mean)
        for value in out.values():
            value["n"] = len(labels)
    return out


def _cv_difference(record, joint, rows: np.ndarray) -> float:
    """Cross-validated AUROC of ``record`` minus ``joint``'s, on the training cases ``rows`` (with repeats)."""
    from mmdx.training.cross_fit import OutOfFold

    def on(r: OutOfFold) -> float:
        return OutOfFold(r.folds, [], r.fold[rows], r.logits[rows], r.labels[rows], [], []).auroc()

    return on(record) - on(joint)


def _percentile_interval(estimate: float, replicates) -> dict:
    low, high = np.nanpercentile(np.asarray(replicates, dtype=float), [2.5, 97.5])
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _ci(interval: dict) -> str:
    return f"{interval['estimate']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"


def report(results: dict) -> str:
    runs = results["runs"]
    base = results.get("baseline", "joint")
    variants: dict[tuple[str, str], list[dict]] = {}
    for row in runs.values():
        variants.setdefault((row["strategy"], row["fusion"]), []).append(row)
    lines = [
        f"test cases {results['n_cases']} ({results['n_positive']} positive); Bayes AUROC "
        f"{results['bayes_auroc']:.3f}; image-alone oracle {results['oracle_image_auroc']:.3f}; ECE (15 bins) "
        f"of a perfectly calibrated model on these cases ≈ {results['bayes_calibration']['ece_reference']['mean']:.3f}",
        "",
        "| strategy | fusion | seeds | val AUROC (choice) | test AUROC | own AUROC image / tabular / text | "
        "lost without image / tabular / text | slope | intercept | ECE (reference) | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (strategy, fusion), rows in variants.items():
        own = " / ".join(
            _mean_sd([r["own"][m] for r in rows if m in r["own"]]) for m in ("image", "tabular", "text")
        )
        lost = " / ".join(
            _mean_sd([r["lost_when_removed"][m]["estimate"] for r in rows if m in r["lost_when_removed"]])
            for m in ("image", "tabular", "text")
        )
        cal = [r["calibration"] for r in rows]
        lines.append(
            f"| {strategy} | {fusion} | {','.join(str(r['seed']) for r in rows)} | "
            f"{_mean_sd([r['best_val_auroc'] for r in rows])} | {_mean_sd([r['auroc'] for r in rows])} | {own} | "
            f"{lost} | {_mean_sd([c['slope']['estimate'] for c in cal])} | "
            f"{_mean_sd([c['intercept']['estimate'] for c in cal])} | {_mean_sd([c['ece'] for c in cal])} "
            f"({_mean_sd([c['ece_reference']['mean'] for c in cal])}) | "
            f"{statistics.mean(r['train_seconds'] for r in rows):.0f} |"
        )
    if results.get("seed_mean_auroc"):
        lines.append("")
    for name, mean in (results.get("seed_mean_auroc") or {}).items():
        lines.append(
            f"- {name}: test AUROC, mean of {mean['seeds']} seeds, {mean['estimate']:.3f} "
            f"[{mean['low']:.3f}, {mean['high']:.3f}]"
        )
    lines += [
        "",
        f"| run | test AUROC | Bayes − run | vs {base} (same fusion, seed) | slope [95%] | intercept [95%] |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for name, row in runs.items():
        vs = results["vs_joint"].get(name)
        cal = row["calibration"]
        lines.append(
            f"| {name} | {row['auroc']:.3f} | {_ci(results['bayes_minus_run'][name])} | "
            f"{_ci(vs) if vs else '-'} | {_ci(cal['slope'])} | {_ci(cal['intercept'])} |"
        )
    cv = [
        (name, row["cross_validated_auroc"]) for name, row in runs.items() if row.get("cross_validated_auroc")
    ]
    if cv:
        lines += [
            "",
            "Cross-validated AUROC over the training split (train.cross_validation_folds; mean of the folds; "
            "a default may be chosen on it):",
            "",
        ]
        lines += [f"- {name}: {value:.3f}" for name, value in cv]
        for name, diff in (results.get("vs_joint_cross_validated") or {}).items():
            lines.append(f"- {name} − {base}, cross-validated (n = {diff['n']}): {_ci(diff)}")
    if results["gated_minus_concat"]:
        lines += ["", "| gated_attention − concat | difference [95% paired bootstrap] |", "|---|---|"]
        for key, diff in results["gated_minus_concat"].items():
            lines.append(f"| {key} | {_ci(diff)} |")
    lines += ["", "AUROC lost when a modality is removed, per run [95% paired bootstrap]:", ""]
    for name, row in runs.items():
        cells = ", ".join(f"{m} {_ci(v)}" for m, v in row["lost_when_removed"].items())
        lines.append(f"- {name}: {cells or '-'}")
    if results.get("own_vs_joint"):
        lines += [
            "",
            f"Each encoder's own test AUROC minus {base}'s (same fusion, seed) [95% paired bootstrap]:",
            "",
        ]
        for name, diffs in results["own_vs_joint"].items():
            lines.append(f"- {name}: " + ", ".join(f"{m} {_ci(v)}" for m, v in diffs.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train", type=Path)
    parser.add_argument("tests", type=Path, nargs="+", metavar="test")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=["joint", "staged", "ogm_ge", "branch_stopping"])
    parser.add_argument("--fusions", nargs="+", default=["gated_attention", "concat"])
    parser.add_argument("--unimodal", nargs="*", default=[], choices=list(UNIMODAL))
    parser.add_argument("--out", type=Path, default=Path("/work/data/balance/bench"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--baseline",
        default="joint",
        help="the variant every other one is compared with (default joint: train.strategy joint with the "
        "config's own augmentation; joint_no_augment turns the augmentation off)",
    )
    parser.add_argument("--name", default="results", help="results are written to OUT/NAME.json")
    parser.add_argument("--train-only", action="store_true", help="train the runs, score nothing")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="train nothing: score the runs already trained, skip the rest",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MMDX_CACHE_DIR", str(args.out / "cache"))
    keys = [(s, f, seed) for seed in args.seeds for s in args.strategies for f in args.fusions]
    keys += [(f"unimodal-{m}", args.fusions[0], seed) for seed in args.seeds for m in args.unimodal]
    for strategy, fusion, _ in keys:
        variant_overrides(strategy, fusion)  # unknown names fail before anything trains
    if args.skip_missing:
        keys = [
            k for k in keys if (args.out / f"{k[0]}-{k[1]}-seed{k[2]}" / "bundle" / "manifest.json").is_file()
        ]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            key: pool.submit(train_one, *key, args.train, args.config, args.out, args.threads, args.overrides)
            for key in keys
        }
        runs = {key: future.result() for key, future in futures.items()}
    if args.train_only:
        return 0
    import torch

    torch.set_num_threads(args.threads)
    results = score(runs, args.tests, args.resamples, baseline=args.baseline)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2, default=float))
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
