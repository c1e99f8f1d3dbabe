"""Does giving the tabular encoder the hours since each value was measured help? (``data.tabular.time_since_measurement``)

The tabular-only baseline (``configs/single/tabular.yaml``) is trained with and without the option on the
same synthetic cohort, for several seeds; the test-split AUROC difference (with minus without) gets a paired,
stratified bootstrap interval per seed (the two models scored on the same resampled cases), and one for the
seeds' averaged predictions.

    python benchmarks/time_since_measurement.py --cohort /work/data/importers/synthetic-2d-600 --seeds 0 1 2 \
        --json time_since_measurement.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "single" / "tabular.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohort", required=True, help="cohort directory (written by mmdx synth if missing)")
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", default="/tmp/mmdx-time-since-runs")
    parser.add_argument("--json")
    args = parser.parse_args()

    from mmdx.config import load_config
    from mmdx.data.synth import SynthOptions, synthesize_cohort
    from mmdx.metrics import auroc
    from mmdx.statistics import paired_bootstrap_difference
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.train import train_run

    cohort = Path(args.cohort)
    if not (cohort / "cohort.yaml").is_file():
        synthesize_cohort(cohort, SynthOptions(n_cases=args.cases, seed=0, dims=2, size=32, workers=2))
    runs = Path(args.runs)
    shutil.rmtree(runs, ignore_errors=True)
    predictions: dict[bool, list[pd.Series]] = {False: [], True: []}
    labels = None
    rows = []
    for seed in args.seeds:
        probs = {}
        for on in (False, True):
            out = runs / f"seed{seed}-{'on' if on else 'off'}"
            config = load_config(
                CONFIG,
                [f"seed={seed}", "train.threads=1", f"data.tabular.time_since_measurement={str(on).lower()}"],
            )
            train_run(config, cohort, out, progress=False)
            frame = evaluate_run(out, workers=1).run.read_predictions()
            test = frame[frame["split"] == "test"].set_index("case_id").sort_index()
            probs[on] = test["probability"]
            labels = test["label"]
            predictions[on].append(test["probability"])
        diff = paired_bootstrap_difference(
            auroc,
            labels.to_numpy(),
            probs[True].to_numpy(),
            probs[False].to_numpy(),
            n_resamples=2000,
            seed=seed,
        )
        rows.append(
            {
                "seed": seed,
                "auroc_off": float(auroc(labels.to_numpy(), probs[False].to_numpy())),
                "auroc_on": float(auroc(labels.to_numpy(), probs[True].to_numpy())),
                "difference": diff.estimate,
                "ci": [diff.low, diff.high],
                "p": diff.p_value,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    mean_on = np.mean([p.to_numpy() for p in predictions[True]], axis=0)
    mean_off = np.mean([p.to_numpy() for p in predictions[False]], axis=0)
    pooled = paired_bootstrap_difference(
        auroc, labels.to_numpy(), mean_on, mean_off, n_resamples=2000, seed=0
    )
    summary = {
        "cohort": str(cohort),
        "n_test": int(len(labels)),
        "seeds": rows,
        "averaged_predictions": {
            "difference": pooled.estimate,
            "ci": [pooled.low, pooled.high],
            "p": pooled.p_value,
        },
    }
    print(json.dumps(summary["averaged_predictions"]))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
