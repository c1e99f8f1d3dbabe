"""Which tabular encoder: each one's tabular-only model, cross-validated on the training split.

    .venv/bin/python -m benchmarks.tabular_encoders demo=/work/data/calib/demo600:configs/demo.yaml \\
        ct3d=/work/data/explain3d/ct3d_2000:configs/ct3d.yaml --seeds 0 1 2 \\
        --encoders ft_transformer mlp linear --baseline ft_transformer --out /work/data/tabsel \\
        [--test demo=/work/data/calib/test2d ct3d=/work/data/explain3d/ct3d_score]

An encoder may carry settings of ``model.tabular``: ``linear+group_lasso=0.05`` is the linear encoder with
its group-lasso penalty at 0.05 (``--encoders linear linear+group_lasso=0.05 --baseline linear``).

For every cohort, encoder and seed, ``mmdx train`` fits a model with the values alone (``model.image`` and
``model.text`` null, the cohort's config otherwise) and ``train.cross_validation_folds=5``: five more models
each train on four fifths of the training split and score the fifth. The choice uses the training split
only: each encoder's cross-validated AUROC minus the baseline's, per seed and seed-averaged, with the
stratified bootstrap of the training cases of :func:`benchmarks.balance.cross_validated_differences`.
``--test`` scores the run's own model on a test cohort for the record (labelled cases with values, paired
bootstrap of :func:`benchmarks.peers.report.seed_mean_auroc_difference`); it takes no part in the choice.
Beside them, two references on the same test cases: a logistic regression on the baseline run's
preprocessed inputs (normalised values, missing indicators, one-hot categories; fitted on the training
split, its L2 strength chosen by 5-fold cross-validation there) and, where the test cohort carries
``ground_truth/truth.jsonl``, the generator's own tabular logit term (what the values allow).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from benchmarks.balance import cross_validated_differences
from benchmarks.paired_auroc import common_cases
from benchmarks.peers.report import seed_mean_auroc_difference
from mmdx.metrics import auroc

REPO = Path(__file__).resolve().parents[1]
MMDX = [sys.executable, "-m", "pipelines.cli"]


def parse_cohorts(items: list[str]) -> dict[str, tuple[Path, Path]]:
    """``NAME=COHORT:CONFIG`` items as ``{name: (cohort, config)}``."""
    out = {}
    for item in items:
        name, _, rest = item.partition("=")
        cohort, _, config = rest.partition(":")
        if not name or not cohort or not config:
            raise SystemExit(f"{item!r}: give each cohort as NAME=COHORT_DIR:CONFIG_YAML")
        out[name] = (Path(cohort), REPO / config if not Path(config).is_absolute() else Path(config))
    return out


def encoder_overrides(spec: str) -> list[str]:
    """``--set`` arguments of an encoder given as ``NAME`` or ``NAME+KEY=VALUE[+KEY=VALUE...]`` (settings of
    ``model.tabular``), e.g. ``linear+group_lasso=0.05``."""
    name, *settings = spec.split("+")
    overrides = [f"model.tabular.name={name}"]
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not name or not key or not sep or not value:
            raise SystemExit(
                f"{spec!r}: give an encoder as NAME or NAME+KEY=VALUE, e.g. linear+group_lasso=0.05"
            )
        overrides.append(f"model.tabular.{key}={value}")
    return [part for override in overrides for part in ("--set", override)]


def train(cohort: Path, config: Path, encoder: str, seed: int, out: Path) -> Path:
    """One tabular-only run with five-fold cross-validation (skipped when its bundle exists); ``encoder`` as
    :func:`encoder_overrides` reads it."""
    if not (out / "bundle" / "manifest.json").exists():
        command = [
            *MMDX, "train", "--config", str(config), "--cohort", str(cohort), "--out", str(out), "--quiet",
            "--set", "model.image=null", "--set", "model.text=null", *encoder_overrides(encoder),
            "--set", "train.cross_validation_folds=5", "--set", f"seed={seed}", "--set", "train.threads=1",
        ]  # fmt: skip
        with open(out.with_suffix(".log"), "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    return out


def predict(run: Path, test: Path) -> pd.DataFrame:
    """The run's probabilities on the test cohort's cases that have values."""
    target = run / f"predictions_{test.name}.parquet"
    if not target.exists():
        command = [*MMDX, "predict", str(run), str(test), "--workers", "1", "--out", str(target)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    frame = pd.read_parquet(target)
    return frame[frame["label"].notna()]


def _value_inputs(
    cohort: Path, run: Path
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Case ids, logistic-regression inputs, labels, splits and presence of values, with ``run``'s preprocessing."""
    from mmdx.data.dataset import Preprocessing, build_case_table
    from mmdx.data.validation import validate_cohort

    prep = Preprocessing.load(run / "bundle")
    validated = validate_cohort(cohort, check_images=False)
    table = build_case_table(validated, prep)
    one_hot = [
        np.eye(cardinality)[table.categorical[:, column]]
        for column, cardinality in enumerate(prep.normaliser.cardinalities)
    ]
    x = np.concatenate([table.tabular, table.tabular_missing, *one_hot], axis=1)
    split = validated.cases.set_index("case_id").loc[table.case_ids, "split"].to_numpy()
    has_values = table.presence[:, 1] & ~np.isnan(table.labels)
    return table.case_ids, x, table.labels, split, has_values


def references(cohort: Path, test: Path, run: Path, test_inputs: tuple) -> dict[str, dict[str, float]]:
    """A logistic regression's and (with ground truth) the generator's tabular term's AUROC on ``test``'s
    labelled cases with values (``test_inputs``: :func:`_value_inputs` of ``test``); the regression sees the
    training split of ``cohort`` only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from mmdx.data.ground_truth import read_truth

    _, x, y, split, has = _value_inputs(cohort, run)
    fit = has & (split == "train")
    grid = {"C": np.logspace(-4, 4, 9)}
    model = GridSearchCV(LogisticRegression(max_iter=5000), grid, cv=5, scoring="roc_auc").fit(x[fit], y[fit])
    ids, x_test, y_test, _, has_test = test_inputs
    y_test = y_test[has_test].astype(int)
    out = {"logistic regression": {"auroc": auroc(y_test, model.predict_proba(x_test[has_test])[:, 1]),
                                   "C": float(model.best_params_["C"])}}  # fmt: skip
    truth = read_truth(test)
    if truth is not None:
        kept = [case for case, keep in zip(ids, has_test, strict=True) if keep]
        if all(case in truth.records for case in kept):
            term = np.array([truth.records[case]["logit_terms"]["tabular"] for case in kept])
            out["generator's tabular term"] = {"auroc": auroc(y_test, expit(term))}
    for value in out.values():
        value["n"] = int(y_test.size)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohorts", nargs="+", metavar="NAME=COHORT:CONFIG")
    parser.add_argument("--encoders", nargs="+", default=["ft_transformer", "mlp", "linear"])
    parser.add_argument("--baseline", default="ft_transformer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test", nargs="*", default=[], metavar="NAME=COHORT")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cohorts = parse_cohorts(args.cohorts)
    tests = dict(item.split("=", 1) for item in args.test)
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = [(name, encoder, seed) for name in cohorts for seed in args.seeds for encoder in args.encoders]

    def run(job: tuple[str, str, int]) -> Path:
        name, encoder, seed = job
        return train(*cohorts[name], encoder, seed, args.out / f"{name}-{encoder}-seed{seed}")

    with ThreadPoolExecutor(args.jobs) as pool:
        runs = dict(zip(jobs, pool.map(run, jobs), strict=True))

    results: dict = {}
    lines = ["| cohort | encoder | cross-validated AUROC per seed | minus baseline, seed mean [95%] | test AUROC per seed (not used) | test minus baseline, seed mean [95%] |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name in cohorts:
        keyed = {
            (encoder, "tabular", seed): runs[(name, encoder, seed)]
            for encoder in args.encoders
            for seed in args.seeds
        }
        differences = cross_validated_differences(keyed, args.resamples, args.baseline)
        cv = {
            key: json.loads((run / "training.json").read_text())["cross_validation"]["auroc"]
            for key, run in keyed.items()
        }
        results[name] = {"cross_validated_auroc": {f"{e}-seed{s}": v for (e, _, s), v in cv.items()},
                         "differences": differences}  # fmt: skip
        test = Path(tests[name]) if name in tests else None
        scored = {}
        if test:
            test_inputs = _value_inputs(test, keyed[(args.baseline, "tabular", args.seeds[0])])
            ids, _, _, _, has_values = test_inputs
            with_values = {case for case, keep in zip(ids, has_values, strict=True) if keep}
            frames = [
                predict(keyed[(encoder, "tabular", s)], test) for encoder in args.encoders for s in args.seeds
            ]
            frames = [f[f["case_id"].astype(str).isin(with_values)] for f in frames]
            y, probabilities = common_cases(frames)
            scored = {
                encoder: np.stack(probabilities[i * len(args.seeds) : (i + 1) * len(args.seeds)])
                for i, encoder in enumerate(args.encoders)
            }
        for encoder in args.encoders:
            seeds_key = f"{encoder}-tabular-seeds{','.join(str(s) for s in args.seeds)}"
            d = differences.get(seeds_key)
            delta = f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else "baseline"
            per_seed = ", ".join(f"{cv[(encoder, 'tabular', s)]:.3f}" for s in args.seeds)
            test_cells = ["-", "-"]
            if scored:
                test_cells[0] = ", ".join(f"{auroc(y, p):.3f}" for p in scored[encoder])
                if encoder != args.baseline:
                    diff = seed_mean_auroc_difference(
                        y, scored[encoder], scored[args.baseline], args.resamples
                    )
                    results[name][f"test-{encoder}-minus-{args.baseline}"] = asdict(diff)
                    test_cells[1] = f"{diff.estimate:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]"
                else:
                    test_cells[1] = "baseline"
            lines.append(f"| {name} | {encoder} | {per_seed} | {delta} | {test_cells[0]} | {test_cells[1]} |")
        if test:
            results[name]["test_cases"] = {"n": int(y.size), "positive": int(y.sum())}
            results[name]["references"] = references(
                cohorts[name][0], test, keyed[(args.baseline, "tabular", args.seeds[0])], test_inputs
            )
            for label, reference in results[name]["references"].items():
                lines.append(f"| {name} | {label} (reference) | - | - | {reference['auroc']:.3f} | - |")
        results[name]["n_training_cases"] = next(iter(differences.values()))["n"] if differences else None
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
