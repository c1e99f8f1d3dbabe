"""``mmdx evaluate``: predictions for every case of the cohort, and metrics per split and per modality pattern."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmdx.bundle import load_bundle
from mmdx.data.dataset import MultimodalDataset
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES
from mmdx.metrics import (
    auroc,
    binary_metrics,
    brier,
    expected_calibration_error,
    json_ready,
    metrics_by_group,
)
from mmdx.predict import predictions_frame, prepare_inputs, run_predictions
from mmdx.run import RunPaths
from mmdx.training.inference import predict_dataset

HELP = """\
Predict every usable case of the cohort with the run's bundle and write RUN/predictions.parquet (case_id,
split, label, calibrated probability, per-modality gate values and presence) and RUN/metrics.json: AUROC,
AUPRC, Brier, ECE and sensitivity/specificity/PPV/NPV at the operating threshold for each split and for
each modality-presence pattern of the test split, calibration before and after temperature scaling, and the
test AUROC with each modality removed at test time. The cohort defaults to the one the run was trained on.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="predict a cohort and compute metrics", description=HELP)
    p.add_argument("run", help="run directory (from mmdx train)")
    p.add_argument("--cohort", help="cohort directory (default: the cohort the run was trained on)")
    p.add_argument("--workers", type=int, default=2, help="processes decoding images (default 2)")
    p.add_argument("--batch-size", type=int, default=64)


def _labelled(frame):
    return frame[frame["label"].notna()]


def evaluate_run(
    run_dir: str | Path,
    cohort_dir: str | Path | None = None,
    workers: int = 2,
    batch_size: int = 64,
    progress: bool = True,
) -> dict:
    run = RunPaths(Path(run_dir))
    run.require("bundle")
    bundle = load_bundle(run.bundle)
    cohort_dir = cohort_dir or bundle.card["cohort"]["path"]
    if not Path(cohort_dir).is_dir():
        raise MmdxError(f"cohort {cohort_dir} not found; pass --cohort DIR")
    with tqdm(desc="caching images", unit="image", leave=False, disable=None if progress else True) as bar:
        inputs = prepare_inputs(
            bundle,
            cohort_dir,
            workers=workers,
            progress=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)),
        )
    inputs.cohort.report.write(run.validation_report)
    start = time.perf_counter()
    preds = run_predictions(bundle, inputs, batch_size)
    latency = (time.perf_counter() - start) / max(1, len(preds.case_ids))
    frame = predictions_frame(bundle, inputs, preds)
    frame.to_parquet(run.predictions, index=False)

    t = bundle.threshold
    metrics: dict = {
        "threshold": t,
        "temperature": bundle.calibration.temperature_,
        "model_version": bundle.version,
        "cohort": str(inputs.cohort.root),
        "splits": {},
        "calibration": {},
        "by_modality_pattern": {},
        "modality_removed": {},
        "latency_seconds_per_case": latency,
    }
    for split in ("train", "val", "test"):
        part = _labelled(frame[frame["split"] == split])
        if len(part) == 0:
            continue
        y, p = part["label"].to_numpy(), part["probability"].to_numpy()
        metrics["splits"][split] = binary_metrics(y, p, t)
        if len(np.unique(y)) == 2:
            p_raw = part["probability_uncalibrated"].to_numpy()
            metrics["calibration"][split] = {
                "ece_before": expected_calibration_error(y, p_raw),
                "ece_after": expected_calibration_error(y, p),
                "brier_before": brier(y, p_raw),
                "brier_after": brier(y, p),
                "ece_bins": 15,
            }
        metrics["by_modality_pattern"][split] = metrics_by_group(y, p, part["modalities"].to_numpy(), t)

    test = _labelled(frame[frame["split"] == "test"])
    if len(test) and len(np.unique(test["label"])) == 2:
        test_ids = set(test["case_id"])
        index = [i for i, c in enumerate(inputs.table.case_ids) if c in test_ids]
        subset = MultimodalDataset(inputs.table.subset(index), bundle.preprocessing, inputs.cache)
        for modality in MODALITIES:
            if modality.value not in bundle.preprocessing.modalities:
                continue
            removed = predict_dataset(bundle.model, subset, batch_size=batch_size, remove=[modality])
            metrics["modality_removed"][modality.value] = {
                "auroc": auroc(removed.labels, 1 / (1 + np.exp(-removed.logits)))
            }
        metrics["modality_removed"]["none"] = {
            "auroc": auroc(test["label"].to_numpy(), test["probability"].to_numpy())
        }
    bayes = inputs.cohort.spec.get("bayes_auroc")
    if bayes is not None:
        metrics["bayes_auroc"] = bayes
        metrics["modality_auroc_bayes"] = inputs.cohort.spec.get("modality_auroc")
    run.metrics.write_text(json.dumps(json_ready(metrics), indent=1), encoding="utf-8")
    return metrics


def run(args: argparse.Namespace) -> int:
    metrics = evaluate_run(args.run, args.cohort, args.workers, args.batch_size)
    run_paths = RunPaths(Path(args.run))
    print(f"predictions: {run_paths.predictions}\nmetrics: {run_paths.metrics}")
    for split, m in metrics["splits"].items():
        print(
            f"  {split:5s} n={m['n']:4d}  AUROC {m['auroc']:.4f}  AUPRC {m['auprc']:.4f}  Brier {m['brier']:.4f}  "
            f"ECE {m['ece']:.4f}  sens {m['sensitivity']:.3f}  spec {m['specificity']:.3f}"
        )
    if "bayes_auroc" in metrics:
        print(f"  Bayes-optimal test AUROC of this synthetic cohort: {metrics['bayes_auroc']:.4f}")
    for name, value in metrics["modality_removed"].items():
        if name != "none":
            print(f"  test AUROC without {name}: {value['auroc']:.4f}")
    return 0
