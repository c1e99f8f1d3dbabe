"""What an ensemble adds over its members, on cohorts it never saw.

    .venv/bin/python -m benchmarks.ensemble_gain RUN [RUN ...] --cohort COHORT [COHORT ...] --out DIR
        [--resamples 2000]

Each RUN holds an ensemble bundle (``train.ensemble`` K >= 2). One pass over every usable case of the
COHORTs computes the ensemble's calibrated probability and each member's own (its logit with its own
temperature and offset, as a single run with that seed would predict it: member 0 *is* the single run of the
same settings and seed). Writes ``DIR/<run>-ensemble.parquet`` and ``DIR/<run>-member<k>.parquet``
(``case_id``, ``label``, ``probability``; the cohorts pooled, each case id prefixed with its cohort's folder name
when there are several) and prints, on the labelled cases: each AUROC,
the ensemble minus member 0 and minus the mean of its members' AUROCs (paired, class-stratified bootstrap,
per run and seed-averaged over the RUNs), and each file's calibration (``benchmarks.paired_auroc``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from torch.utils.data import DataLoader

from benchmarks.paired_auroc import calibration_lines, common_cases
from benchmarks.peers.report import seed_mean_auroc_difference
from mmdx.metrics import auroc


def member_probabilities(run: Path, cohort: Path, batch_size: int = 64) -> pd.DataFrame:
    """``case_id``, ``label``, ``ensemble`` and ``member<k>`` probabilities for every usable case of ``cohort``."""
    from mmdx.bundle import load_bundle
    from mmdx.data.dataset import collate
    from mmdx.keys import Keys
    from mmdx.predict import prepare_inputs

    bundle = load_bundle(run)
    members = getattr(bundle.model, "calibrated_members", None)
    if members is None:
        raise SystemExit(
            f"{run}: the bundle holds one model, not an ensemble (train with train.ensemble >= 2)"
        )
    parts = list(members())
    inputs = prepare_inputs(bundle, cohort, workers=1)
    loader = DataLoader(inputs.dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    ids, labels, ensemble, each = [], [], [], [[] for _ in parts]
    with torch.no_grad():
        for batch in loader:
            ids.extend(batch[Keys.CASE_ID])
            labels.append(batch[Keys.LABEL].float().numpy())
            ensemble.append(bundle.model(batch).logits.float().numpy())
            for k, (member, scale, shift) in enumerate(parts):
                each[k].append((member(batch).logits * scale + shift).float().numpy())
    frame = pd.DataFrame({"case_id": ids, "label": np.concatenate(labels)})
    frame["ensemble"] = bundle.calibration.transform(np.concatenate(ensemble))
    for k, values in enumerate(each):
        frame[f"member{k}"] = expit(np.concatenate(values))
    return frame


def _as_predictions(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return pd.DataFrame({"case_id": frame["case_id"], "label": frame["label"], "probability": frame[column]})


def report(frames: dict[str, pd.DataFrame], resamples: int) -> list[str]:
    """AUROCs and paired differences: ensemble − member 0 and ensemble − members' mean, per run and over runs."""
    runs = list(frames)
    columns = {name: [c for c in frame.columns if c.startswith("member")] for name, frame in frames.items()}
    tables = [_as_predictions(frames[r], c) for r in runs for c in ("ensemble", *columns[r])]
    y, probabilities = common_cases(tables)
    lines = [f"{y.size} labelled cases in every file ({int(y.sum())} positive)"]
    at, ensembles, firsts = 0, [], []
    for run in runs:
        count = 1 + len(columns[run])
        ens, members = probabilities[at], np.stack(probabilities[at + 1 : at + count])
        at += count
        ensembles.append(ens)
        firsts.append(members[0])
        aurocs = ", ".join(f"{auroc(y, m):.3f}" for m in members)
        first = seed_mean_auroc_difference(y, ens[None], members[:1], n_resamples=resamples)
        mean = seed_mean_auroc_difference(y, ens[None], members, n_resamples=resamples)
        lines.append(
            f"{run}: ensemble {auroc(y, ens):.3f}, members {aurocs}; ensemble − member 0 {first.estimate:+.3f} "
            f"[{first.low:+.3f}, {first.high:+.3f}], − members' mean {mean.estimate:+.3f} "
            f"[{mean.low:+.3f}, {mean.high:+.3f}]"
        )
    if len(runs) > 1:
        first = seed_mean_auroc_difference(y, np.stack(ensembles), np.stack(firsts), n_resamples=resamples)
        lines.append(
            f"over the {len(runs)} runs: ensemble − member 0 {first.estimate:+.3f} [{first.low:+.3f}, "
            f"{first.high:+.3f}]"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--cohort", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    frames = {}
    for run in args.runs:
        parts = []
        for cohort in args.cohort:
            part = member_probabilities(run, cohort)
            if len(args.cohort) > 1:  # synthetic cohorts reuse case ids: name each case by its cohort too
                part["case_id"] = cohort.name + "/" + part["case_id"].astype(str)
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True)
        frames[run.name] = frame
        for column in [c for c in frame.columns if c not in ("case_id", "label")]:
            _as_predictions(frame, column).to_parquet(args.out / f"{run.name}-{column}.parquet")
    print("\n".join(report(frames, args.resamples)))
    names, tables = [], []
    for run, frame in frames.items():
        for column in ("ensemble", "member0"):
            names.append(f"{run} {column}")
            tables.append(_as_predictions(frame, column))
    print("\n".join(calibration_lines(names, tables, [], max(200, args.resamples // 4))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
