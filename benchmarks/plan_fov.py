"""The fitted preprocessing plan against the old fixed grid, on a cohort whose field of view is not ours.

    .venv/bin/python -m benchmarks.plan_fov TRAIN_COHORT TEST_COHORT [TEST_COHORT ...]
        [--config configs/ct3d.yaml] [--seeds 0 1 2]
        [--variants planned-image fixed-image planned-fused fixed-fused] [--out /work/data/plan/bench]
        [--jobs 2] [--threads 1] [--set KEY=VALUE ...] [--resamples 2000] [--name NAME] [--baseline DIR]

Each variant trains the shipped config on TRAIN_COHORT (``mmdx train``, fresh process, ``--set seed=S``),
then predicts every case of each TEST_COHORT -- other cohorts from the same generator with other seeds, so
that the test set is large -- with the bundle's own plan (``mmdx predict``):

* ``planned-image``: ``--set model.tabular=null --set model.text=null`` (the image alone), the plan fitted
  to the training volumes (the shipped defaults: ``dims``/``shape``/``spacing``/``intensity: auto``);
* ``fixed-image``: the same with the grid of the config before plans existed (32³ voxels of 11 mm, the HU
  window on every image);
* ``planned-fused`` / ``fixed-fused``: the whole model (image, values, notes) with either grid.

Scored on the test cohorts' labelled, usable cases, pooled: AUROC of each run; the image modality's oracle AUROC
(the exact posterior from the image alone, ``prior + image term`` of ``ground_truth/truth.jsonl``, on the
same cases); paired stratified bootstrap intervals of the oracle's lead over each image-only run and of
planned minus fixed for each seed (and, with ``--baseline DIR``, of each run minus the run of the same variant
and seed under DIR, trained with other settings); ECE beside the ECE a calibrated model gets on as many cases,
calibration slope and intercept. Finished runs are reused (delete a run folder to redo it). Prints a
Markdown report and writes ``NAME.json`` (``--name``, default ``results``) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
IMAGE_ONLY = ["model.tabular=null", "model.text=null"]
#: the image settings of configs/ct3d.yaml before preprocessing plans existed
FIXED_GRID = [
    "data.image.dims=3",
    "data.image.shape=[32, 32, 32]",
    "data.image.spacing=[11.0, 11.0, 11.0]",
    "data.image.intensity=window",
]
VARIANTS: dict[str, list[str]] = {
    "planned-image": IMAGE_ONLY,
    "fixed-image": IMAGE_ONLY + FIXED_GRID,
    "planned-fused": [],
    "fixed-fused": FIXED_GRID,
}


def _mmdx(*args: str) -> list[str]:
    return ["nice", "-n", "10", sys.executable, "-m", "pipelines.cli", *args]


def predictions_file(run: Path, test: Path) -> Path:
    return run / f"predictions_{test.name}.parquet"


def run_one(
    variant: str,
    seed: int,
    train: Path,
    tests: list[Path],
    config: Path,
    out: Path,
    threads: int,
    extra: list[str],
) -> Path:
    """Train and predict one variant and seed (reused where it exists); returns the run folder."""
    run = out / f"{variant}-seed{seed}"
    if all(predictions_file(run, test).is_file() for test in tests):
        return run
    log = out / f"{variant}-seed{seed}.log"
    sets = [*VARIANTS[variant], f"seed={seed}", f"train.threads={threads}", *extra]
    started = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        if not (run / "bundle" / "manifest.json").is_file():
            if run.exists():
                subprocess.run(["rm", "-rf", str(run)], check=True)
            cmd = _mmdx(
                "train", "--config", str(config), "--cohort", str(train), "--out", str(run), "--quiet"
            )
            for item in sets:
                cmd += ["--set", item]
            subprocess.run(cmd, stdout=fh, stderr=fh, check=True, cwd=REPO)
        for test in tests:
            if predictions_file(run, test).is_file():
                continue
            cmd = _mmdx(
                "predict", str(run), str(test), "--out", str(predictions_file(run, test)), "--workers", "1"
            )
            subprocess.run(cmd, stdout=fh, stderr=fh, check=True, cwd=REPO)
    (run / "benchmark_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - started}))
    return run


def oracle_scores(cohort: Path) -> pd.DataFrame:
    """Per case of ``cohort``, indexed ``cohort-name/case_id``: the image-alone oracle log-odds and the full
    Bayes log-odds."""
    rows = []
    with (cohort / "ground_truth" / "truth.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            terms = record["logit_terms"]
            rows.append(
                {
                    "case_id": f"{cohort.name}/{record['case_id']}",
                    "oracle_image": terms["prior"] + terms["image"],
                    "oracle_all": sum(terms.values()),
                }
            )
    return pd.DataFrame(rows).set_index("case_id")


def pooled_predictions(run: Path, tests: list[Path]) -> pd.DataFrame:
    """The run's predictions on every test cohort, indexed ``cohort-name/case_id``."""
    frames = []
    for test in tests:
        frame = pd.read_parquet(predictions_file(run, test))
        frame["case_id"] = test.name + "/" + frame["case_id"].astype(str)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).set_index("case_id")


def _interval(estimate) -> dict:
    return {"estimate": estimate.estimate, "low": estimate.low, "high": estimate.high}


def score(
    runs: dict[tuple[str, int], Path], tests: list[Path], resamples: int, baseline: Path | None = None
) -> dict:
    from scipy.special import expit

    from mmdx.metrics import auroc, expected_calibration_error
    from mmdx.shift import perfect_calibration_ece
    from mmdx.statistics import calibration_slope_intercept, paired_bootstrap_difference

    oracle = pd.concat([oracle_scores(test) for test in tests])
    frames = {key: pooled_predictions(run, tests) for key, run in runs.items()}
    others = {}
    if baseline is not None:
        for variant, seed in runs:
            other = baseline / f"{variant}-seed{seed}"
            if all(predictions_file(other, test).is_file() for test in tests):
                others[(variant, seed)] = pooled_predictions(other, tests)
    common = set(oracle.index)
    for frame in others.values():
        common &= set(frame.index[frame["label"].notna()])
    for frame in frames.values():
        common &= set(frame.index[frame["label"].notna()])
    cases = sorted(common)
    first = next(iter(frames.values()))
    y = first.loc[cases, "label"].to_numpy(dtype=float)
    image_oracle = expit(oracle.loc[cases, "oracle_image"].to_numpy())  # the exact posterior, a probability
    out: dict = {
        "n_cases": len(cases),
        "n_positive": int(y.sum()),
        "oracle_image_auroc": auroc(y, image_oracle),
        "oracle_all_auroc": auroc(y, expit(oracle.loc[cases, "oracle_all"].to_numpy())),
        "runs": {},
        "gap_to_image_oracle": {},
        "planned_minus_fixed": {},
    }
    probability = {key: frame.loc[cases, "probability"].to_numpy() for key, frame in frames.items()}
    for (variant, seed), p in probability.items():
        epochs = json.loads((runs[(variant, seed)] / "training.json").read_text())["result"]
        fit = calibration_slope_intercept(y, p)
        out["runs"][f"{variant}-seed{seed}"] = {
            "variant": variant,
            "seed": seed,
            "auroc": auroc(y, p),
            "epochs_run": epochs.get("epochs_run"),
            "best_epoch": epochs.get("best_epoch"),
            "best_val_auroc": epochs.get("best_val_auroc"),
            "ece": expected_calibration_error(y, p),
            "ece_if_calibrated": perfect_calibration_ece(p, seed=seed).to_dict(),
            "calibration_slope": fit.slope,
            "calibration_intercept": fit.intercept,
        }
        if variant.endswith("-image"):
            gap = paired_bootstrap_difference(auroc, y, image_oracle, p, n_resamples=resamples, seed=seed)
            out["gap_to_image_oracle"][f"{variant}-seed{seed}"] = _interval(gap)
    for kind in ("image", "fused"):
        for (variant, seed), p in probability.items():
            if variant != f"planned-{kind}" or (f"fixed-{kind}", seed) not in probability:
                continue
            diff = paired_bootstrap_difference(
                auroc, y, p, probability[(f"fixed-{kind}", seed)], n_resamples=resamples, seed=seed
            )
            out["planned_minus_fixed"][f"{kind}-seed{seed}"] = _interval(diff)
    out["minus_baseline"] = {}
    for (variant, seed), frame in others.items():
        reference = frame.loc[cases, "probability"].to_numpy()
        diff = paired_bootstrap_difference(
            auroc, y, probability[(variant, seed)], reference, n_resamples=resamples, seed=seed
        )
        out["minus_baseline"][f"{variant}-seed{seed}"] = {
            **_interval(diff),
            "baseline_auroc": auroc(y, reference),
        }
    return out


def report(results: dict, variants: list[str], seeds: list[int]) -> str:
    lines = [
        f"test cases {results['n_cases']} ({results['n_positive']} positive); image oracle AUROC "
        f"{results['oracle_image_auroc']:.3f}; Bayes AUROC (all modalities) {results['oracle_all_auroc']:.3f}",
        "",
        "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd | epochs (best) |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]
    for variant in variants:
        runs = [results["runs"].get(f"{variant}-seed{s}") for s in seeds]
        values = [r["auroc"] for r in runs if r]
        cells = [f"{r['auroc']:.3f}" if r else "-" for r in runs]
        spread = f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else "-"
        epochs = ", ".join(f"{r['epochs_run']} ({r['best_epoch']})" for r in runs if r)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {spread} | {epochs} |")
    lines += [
        "",
        "| run | best validation AUROC | ECE | ECE if calibrated (95% range) | calibration slope | intercept |",
        "|---|---|---|---|---|---|",
    ]
    for key, run in results["runs"].items():
        ref = run["ece_if_calibrated"]
        best_val = "-" if run["best_val_auroc"] is None else f"{run['best_val_auroc']:.3f}"
        lines.append(
            f"| {key} | {best_val} | {run['ece']:.3f} | {ref['mean']:.3f} "
            f"[{ref['low']:.3f}, {ref['high']:.3f}] | {run['calibration_slope']:.2f} "
            f"| {run['calibration_intercept']:+.2f} |"
        )
    lines += ["", "| comparison | seed | difference | 95% paired bootstrap interval |", "|---|---|---|---|"]
    for key, gap in results["gap_to_image_oracle"].items():
        variant, seed = key.rsplit("-seed", 1)
        lines.append(
            f"| image oracle − {variant} | {seed} | {gap['estimate']:+.3f} | [{gap['low']:+.3f}, {gap['high']:+.3f}] |"
        )
    for key, diff in results["planned_minus_fixed"].items():
        kind, seed = key.rsplit("-seed", 1)
        lines.append(
            f"| planned − fixed ({kind}) | {seed} | {diff['estimate']:+.3f} | [{diff['low']:+.3f}, {diff['high']:+.3f}] |"
        )
    for key, diff in results.get("minus_baseline", {}).items():
        variant, seed = key.rsplit("-seed", 1)
        lines.append(
            f"| {variant} − baseline ({diff['baseline_auroc']:.3f}) | {seed} | {diff['estimate']:+.3f} "
            f"| [{diff['low']:+.3f}, {diff['high']:+.3f}] |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train", type=Path)
    parser.add_argument("tests", type=Path, nargs="+", metavar="test")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ct3d.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("/work/data/plan/bench"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--name", default="results", help="results are written to OUT/NAME.json")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another --out folder (e.g. runs of other settings): each run is compared, paired, with the run "
        "of the same variant and seed there, on the cases both scored",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MMDX_CACHE_DIR", str(args.out / "cache"))
    keys = [(v, s) for s in args.seeds for v in args.variants]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            key: pool.submit(
                run_one,
                key[0],
                key[1],
                args.train,
                args.tests,
                args.config,
                args.out,
                args.threads,
                args.overrides,
            )
            for key in keys
        }
        runs = {key: future.result() for key, future in futures.items()}
    results = score(runs, args.tests, args.resamples, args.baseline)
    results["settings"] = {
        "train": str(args.train),
        "tests": [str(t) for t in args.tests],
        "config": str(args.config),
        "seeds": args.seeds,
        "overrides": args.overrides,
        "variants": {v: VARIANTS[v] for v in args.variants},
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(report(results, args.variants, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
