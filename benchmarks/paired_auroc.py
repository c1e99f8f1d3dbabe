"""Two sets of models on the same cases: the paired difference of their AUROCs, per seed and seed-averaged.

    .venv/bin/python -m benchmarks.paired_auroc --new NEW_SEED0.parquet NEW_SEED1.parquet \\
        --old OLD_SEED0.parquet OLD_SEED1.parquet [--resamples 2000] [--calibration]

Each file is a predictions table (``mmdx predict`` / ``mmdx evaluate`` output, or a peer's
``predictions*.csv`` from :mod:`benchmarks.peers.run`: ``case_id``, ``label``, ``probability``); the i-th
``--new`` file is paired with the i-th ``--old`` one (the same seed). Scored on the labelled cases every file
holds. Intervals: the paired, class-stratified bootstrap of
:func:`benchmarks.peers.report.seed_mean_auroc_difference`, per pair and of the seed-averaged AUROCs.
``--calibration`` adds each file's calibration on the same cases: the logistic recalibration slope and
intercept (bootstrap intervals), the ECE (15 bins) and the ECE a perfectly calibrated model gets with the same
probabilities on as many cases (labels drawn from the probabilities; mean and 95% range). ``--truth COHORT``
(a synthetic cohort holding ``ground_truth/truth.jsonl``) adds the gap of each ``--new`` file to the Bayes-optimal
AUROC of its exact posterior, paired on the same cases, per file and seed-averaged. ``--calibration-floor
TRAINING_COHORT`` (with ``--truth``) adds what a perfect model gets when it is calibrated the way ``mmdx train``
calibrates, on the validation split of the training cohort: the exact posterior of the training cohort, Platt-
fitted on that split's labels (:class:`mmdx.training.calibration.TemperatureScaler`, the offset anchored to
the development class rate as by default), applied to the exact posterior of the scored cases; its slope and
intercept there, and how often such a calibration on a random split of the same size (drawn from the scored
cases) leaves the slope outside [0.9, 1.1]. ``--floor-folds K`` adds the same for ``train.ensemble_split: folds``:
the training cohort's labelled training and validation cases dealt into K folds as ``mmdx train`` deals them
(per ``--floor-seeds`` seed), the exact posterior Platt-fitted on each fold and the mean of the K calibrated
logits scored on the same cases: the calibration's own error, without members that disagree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.peers.report import seed_mean_auroc_difference
from mmdx.metrics import auroc
from mmdx.training.calibration import TemperatureScaler


def common_cases(frames: list[pd.DataFrame]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels ``[n]`` of the labelled cases every frame holds, and each frame's probabilities on them."""
    indexed = [f.set_index(f["case_id"].astype(str)) for f in frames]
    cases = indexed[0].index[indexed[0]["label"].notna()]
    for frame in indexed[1:]:
        cases = cases.intersection(frame.index)
    y = indexed[0].loc[cases, "label"].to_numpy(dtype=int)
    return y, [f.loc[cases, "probability"].to_numpy(dtype=float) for f in indexed]


def compare(new: list[pd.DataFrame], old: list[pd.DataFrame], resamples: int) -> list[str]:
    """Report lines: each pair's AUROCs and difference, then the seed-averaged difference."""
    if len(new) != len(old):
        raise SystemExit(f"--new has {len(new)} files and --old {len(old)}: pair them seed by seed")
    y, probabilities = common_cases([*new, *old])
    a, b = np.stack(probabilities[: len(new)]), np.stack(probabilities[len(new) :])
    lines = [f"{y.size} labelled cases in every file ({int(y.sum())} positive)"]
    for i in range(len(new)):
        d = seed_mean_auroc_difference(y, a[i : i + 1], b[i : i + 1], n_resamples=resamples)
        lines.append(
            f"pair {i}: new {auroc(y, a[i]):.3f}, old {auroc(y, b[i]):.3f}, new − old {d.estimate:+.3f} "
            f"[{d.low:+.3f}, {d.high:+.3f}]"
        )
    if len(new) > 1:
        d = seed_mean_auroc_difference(y, a, b, n_resamples=resamples)
        lines.append(f"seed mean: new − old {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]")
    return lines


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions table from parquet (``mmdx predict``) or CSV (a peer's ``predictions*.csv`` of
    :mod:`benchmarks.peers.run`); case ids as strings."""
    if not path.is_file():
        raise SystemExit(
            f"{path}: no such predictions file (write it with `mmdx predict RUN COHORT --out FILE`)"
        )
    csv = path.suffix.lower() == ".csv"
    try:
        frame = pd.read_csv(path, dtype={"case_id": str}) if csv else pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"{path}: not a readable {'CSV' if csv else 'parquet'} table ({exc})") from None
    missing = {"case_id", "label", "probability"} - set(frame.columns)
    if missing:
        raise SystemExit(f"{path}: no column {', '.join(sorted(missing))}: not a predictions table")
    return frame.assign(case_id=frame["case_id"].astype(str))


def truth_frame(cohort: Path) -> pd.DataFrame:
    """The exact Bayes posterior of a synthetic cohort as a predictions table (``case_id``, ``label``,
    ``probability``, ``split``)."""
    import json

    with (cohort / "ground_truth" / "truth.jsonl").open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return pd.DataFrame(
        {
            "case_id": [str(r["case_id"]) for r in records],
            "label": [r.get("label") for r in records],
            "probability": [r.get("posterior") for r in records],
            "split": [r.get("split") for r in records],
        }
    ).dropna(subset=["probability"])


def bayes_gap_lines(new: list[pd.DataFrame], truth: pd.DataFrame, resamples: int) -> list[str]:
    """Bayes − each file's AUROC and Bayes − the seed-averaged AUROC, paired on the cases all hold."""
    y, probabilities = common_cases([truth, *new])
    bayes, models = probabilities[0][None, :], np.stack(probabilities[1:])
    lines = [f"Bayes-optimal AUROC {auroc(y, probabilities[0]):.3f} on {y.size} cases"]
    for i in range(len(new)):
        d = seed_mean_auroc_difference(y, bayes, models[i : i + 1], n_resamples=resamples)
        lines.append(f"pair {i}: Bayes − new {d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
    if len(new) > 1:
        d = seed_mean_auroc_difference(y, bayes, models, n_resamples=resamples)
        lines.append(f"seed mean: Bayes − new {d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
    return lines


def _platt_on(posterior: np.ndarray, labels: np.ndarray, prevalence: float) -> TemperatureScaler:
    from scipy.special import logit

    z = logit(np.clip(posterior, 1e-6, 1 - 1e-6))
    return TemperatureScaler(method="platt").fit(z, labels, prevalence=prevalence)


def _floor_inputs(training: Path, truth: pd.DataFrame) -> tuple[pd.DataFrame, float, np.ndarray, np.ndarray]:
    """The training cohort's labelled training and validation cases (training rows first, as ``mmdx train``
    orders them) with their class rate, and the scored cases' labels and posterior logits."""
    from scipy.special import logit

    cohort = truth_frame(training).dropna(subset=["label"])
    development = pd.concat([cohort[cohort["split"] == "train"], cohort[cohort["split"] == "val"]])
    scored = truth.dropna(subset=["label"])
    z = logit(np.clip(scored["probability"].to_numpy(dtype=np.float64), 1e-6, 1 - 1e-6))
    return development, float(development["label"].mean()), scored["label"].to_numpy(dtype=int), z


def calibration_floor_lines(
    training: Path, truth: pd.DataFrame, resamples: int, draws: int = 1000, seed: int = 0
) -> list[str]:
    """The calibration a perfect model gets from the training cohort's validation split (see the module's
    docstring), scored on the cases of ``truth`` (the scored cohort's exact posterior)."""
    from scipy.special import expit

    from benchmarks.balance import calibration_summary
    from mmdx.statistics import calibration_slope_intercept

    development, prevalence, y, z = _floor_inputs(training, truth)
    val = development[development["split"] == "val"]
    if val.empty:
        raise SystemExit(f"{training}: no labelled validation case in ground_truth/truth.jsonl")
    labels = val["label"].to_numpy(dtype=np.float64)
    scaler = _platt_on(val["probability"].to_numpy(dtype=np.float64), labels, prevalence)
    posterior = expit(z)
    c = calibration_summary(y, scaler.transform(z), resamples, seed=seed)
    slope, intercept = c["slope"], c["intercept"]
    rng = np.random.default_rng(seed)
    outside = 0
    for _ in range(draws):
        pick = rng.choice(y.size, labels.size, replace=False)
        other = _platt_on(posterior[pick], y[pick], prevalence)
        outside += not 0.9 <= calibration_slope_intercept(y, other.transform(z)).slope <= 1.1
    return [
        f"calibration floor: the exact posterior Platt-fitted on the {labels.size} validation cases of "
        f"{training.name} (T {scaler.temperature_:.3f}, offset {scaler.offset_:+.3f}) scores slope "
        f"{slope['estimate']:.3f} [{slope['low']:.3f}, {slope['high']:.3f}], intercept "
        f"{intercept['estimate']:+.3f} [{intercept['low']:+.3f}, {intercept['high']:+.3f}] on {y.size} cases; "
        f"fitted on a random {labels.size}-case split instead, its slope falls outside [0.9, 1.1] in "
        f"{outside / draws:.0%} of {draws} draws"
    ]


def fold_floor_lines(
    training: Path, truth: pd.DataFrame, folds: int, seeds: list[int], resamples: int
) -> list[str]:
    """The calibration a perfect model gets from ``train.ensemble_split: folds``: the exact posterior of the
    training cohort's labelled training and validation cases, dealt into ``folds`` folds the way ``mmdx
    train`` deals them (stratified, with each of ``seeds``; a run's folds differ where validation rejected
    cases), Platt-fitted on each fold (the offset anchored to their class
    rate), and the mean of the ``folds`` calibrated logits scored on the cases of ``truth``. Every "member" is
    the same exact posterior, so what remains is the calibration's own error, not the averaging of members
    that disagree."""
    from scipy.special import expit

    from benchmarks.balance import calibration_summary
    from mmdx.training.cross_fit import assign_folds

    development, prevalence, y, z = _floor_inputs(training, truth)
    if development.empty:
        raise SystemExit(f"{training}: no labelled training or validation case in ground_truth/truth.jsonl")
    labels = development["label"].to_numpy(dtype=np.float64)
    posterior = development["probability"].to_numpy(dtype=np.float64)
    lines = []
    for seed in seeds:
        fold = assign_folds(labels, folds, seed)
        calibrated = [
            _platt_on(posterior[fold == k], labels[fold == k], prevalence).calibrated_logit(z)
            for k in range(folds)
        ]
        c = calibration_summary(y, expit(np.mean(calibrated, axis=0)), resamples, seed=seed)
        slope, intercept = c["slope"], c["intercept"]
        lines.append(
            f"fold calibration floor, seed {seed}: the exact posterior Platt-fitted on each of {folds} folds of the "
            f"{labels.size} labelled training and validation cases of {training.name}, mean of the calibrated "
            f"logits: slope {slope['estimate']:.3f} [{slope['low']:.3f}, {slope['high']:.3f}], intercept "
            f"{intercept['estimate']:+.3f} [{intercept['low']:+.3f}, {intercept['high']:+.3f}] on {y.size} cases"
        )
    return lines


def calibration_lines(
    names: list[str], new: list[pd.DataFrame], old: list[pd.DataFrame], resamples: int
) -> list[str]:
    """One line per file: slope, intercept (95% bootstrap), ECE against a calibrated model's at this n
    (:func:`benchmarks.balance.calibration_summary` on the cases every file holds)."""
    from benchmarks.balance import calibration_summary

    y, probabilities = common_cases([*new, *old])
    lines = []
    for name, p in zip(names, probabilities, strict=True):
        c = calibration_summary(y, p, resamples, seed=0)
        slope, intercept, reference = c["slope"], c["intercept"], c["ece_reference"]
        lines.append(
            f"{name}: slope {slope['estimate']:.3f} [{slope['low']:.3f}, {slope['high']:.3f}], intercept "
            f"{intercept['estimate']:+.3f} [{intercept['low']:+.3f}, {intercept['high']:+.3f}], ECE "
            f"{c['ece']:.3f} (perfectly calibrated at this n: "
            f"{reference['mean']:.3f} [{reference['low']:.3f}, {reference['high']:.3f}])"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new", type=Path, nargs="+", required=True)
    parser.add_argument("--old", type=Path, nargs="+", required=True)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--calibration", action="store_true", help="also each file's calibration")
    parser.add_argument(
        "--truth",
        type=Path,
        help="a synthetic cohort: also Bayes − each --new file's AUROC (its exact posterior)",
    )
    parser.add_argument(
        "--calibration-floor",
        type=Path,
        metavar="TRAINING_COHORT",
        help="with --truth: the slope and intercept a perfect model gets when calibrated on the validation "
        "split of TRAINING_COHORT (a synthetic cohort)",
    )
    parser.add_argument(
        "--floor-folds",
        type=int,
        metavar="K",
        help="with --calibration-floor: also the floor of train.ensemble_split: folds with K folds, for the "
        "fold assignment of each --floor-seeds run",
    )
    parser.add_argument("--floor-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    if args.floor_folds is not None and (args.calibration_floor is None or args.floor_folds < 2):
        parser.error("--floor-folds needs --calibration-floor and at least 2 folds")
    if args.calibration_floor is not None and args.truth is None:
        parser.error("--calibration-floor needs --truth (the scored cohort's exact posterior)")
    new = [read_predictions(p) for p in args.new]
    old = [read_predictions(p) for p in args.old]
    print("\n".join(compare(new, old, args.resamples)))
    if args.truth is not None:
        print("\n".join(bayes_gap_lines(new, truth_frame(args.truth), args.resamples)))
    if args.calibration:
        names = [f"new {p.name}" for p in args.new] + [f"old {p.name}" for p in args.old]
        print("\n".join(calibration_lines(names, new, old, max(200, args.resamples // 4))))
    if args.calibration_floor is not None:
        truth = truth_frame(args.truth)  # scored on the cases every --new file holds
        truth = truth[truth["case_id"].isin(set.intersection(*(set(f["case_id"]) for f in new)))]
        resamples = max(200, args.resamples // 4)
        print("\n".join(calibration_floor_lines(args.calibration_floor, truth, resamples)))
        if args.floor_folds is not None:
            lines = fold_floor_lines(
                args.calibration_floor, truth, args.floor_folds, args.floor_seeds, resamples
            )
            print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
