"""Contrastive pretraining against its baseline, from the runs that ``benchmarks.balance`` trained and scored.

    .venv/bin/python -m benchmarks.contrastive OUT [--pairs contrastive:joint ...] [--seeds 0 1 2]
        [--fusion gated_attention] [--resamples 1000]

``OUT`` is a ``benchmarks.balance --out`` folder whose runs were scored (each run's ``test_outputs.npz``:
its outputs on the pooled test cohorts). For each ``VARIANT:BASELINE`` pair and seed, on the labelled test
cases both runs predicted: the fused test AUROC and each encoder's own test AUROC of the variant minus the
baseline's (paired stratified bootstrap, seeded by the seed), and what the variant's pretraining did
(``training.json``: pairs, epochs, best epoch, the held-out training pairs' contrastive loss at the first
and the best epoch, and the loss of projections that carry nothing, ``held_out_chance``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from benchmarks.balance import _ci, _interval, _load_npz, _sigmoid


def _aligned(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions in ``a`` and ``b`` of the cases both labelled, and their labels."""
    position = {c: i for i, c in enumerate(b["case_id"])}
    rows_a, rows_b = [], []
    for i, (case, label) in enumerate(zip(a["case_id"], a["label"], strict=True)):
        j = position.get(case)
        if j is not None and not math.isnan(label) and not math.isnan(b["label"][j]):
            rows_a.append(i)
            rows_b.append(j)
    rows_a_, rows_b_ = np.array(rows_a), np.array(rows_b)
    return rows_a_, rows_b_, a["label"][rows_a_].astype(int)


def compare(
    variant: dict[str, np.ndarray], baseline: dict[str, np.ndarray], resamples: int, seed: int
) -> dict:
    """Fused and own test AUROC of ``variant`` minus ``baseline`` (outputs of ``balance.test_outputs``)."""
    from mmdx.metrics import auroc
    from mmdx.statistics import paired_bootstrap_difference

    rows_a, rows_b, y = _aligned(variant, baseline)
    found = {
        "n_cases": int(y.size),
        "fused": _interval(
            paired_bootstrap_difference(
                auroc, y, variant["p"][rows_a], baseline["p"][rows_b], n_resamples=resamples, seed=seed
            )
        ),
        "own": {},
    }
    for key in sorted(k for k in variant if k.startswith("own_") and k in baseline):
        a, b = variant[key][rows_a], baseline[key][rows_b]
        have = ~np.isnan(a) & ~np.isnan(b)
        diff = paired_bootstrap_difference(
            auroc, y[have], _sigmoid(a[have]), _sigmoid(b[have]), n_resamples=resamples, seed=seed
        )
        found["own"][key.removeprefix("own_")] = _interval(diff)
    return found


def pretraining(run: Path) -> dict | None:
    """What the run's pretraining did, from its ``training.json`` (``None`` without pretraining)."""
    record = json.loads((run / "training.json").read_text(encoding="utf-8")).get("pretrain")
    if not record:
        return None
    history = record["history"]
    best = history[record["best_epoch"] - 1] if record["best_epoch"] >= 1 else history[0]
    return {
        "pairs": {name: counts["train"] for name, counts in record["pairs"].items()},
        "held_out_cases": record["cases"]["held_out"],
        "epochs_run": record["epochs_run"],
        "best_epoch": record["best_epoch"],
        "held_out_loss_first": history[0]["held_out_loss"],
        "held_out_loss_best": best["held_out_loss"],
        "held_out_accuracy_best": best["held_out_accuracy"],
        "held_out_chance": history[0].get("held_out_chance", math.nan),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--pairs", nargs="+", default=["contrastive:joint"], metavar="VARIANT:BASELINE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fusion", default="gated_attention")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    lines = [
        "| variant − baseline | seed | cases | fused test AUROC | own image | own tabular | own text | "
        "pretraining: pairs (train cases); best / run epochs; held-out loss first → best (retrieval "
        "accuracy), chance loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in args.pairs:
        variant, baseline = item.split(":")
        for seed in args.seeds:
            runs = [args.out / f"{name}-{args.fusion}-seed{seed}" for name in (variant, baseline)]
            outputs = [_load_npz(run / "test_outputs.npz") for run in runs]
            found = compare(outputs[0], outputs[1], args.resamples, seed)
            own = [_ci(found["own"][m]) if m in found["own"] else "-" for m in ("image", "tabular", "text")]
            pre = pretraining(runs[0])
            described = "-"
            if pre is not None:
                pairs = ", ".join(f"{name} ({n})" for name, n in pre["pairs"].items())
                described = (
                    f"{pairs}; {pre['best_epoch']} / {pre['epochs_run']}; {pre['held_out_loss_first']:.2f} → "
                    f"{pre['held_out_loss_best']:.2f} ({pre['held_out_accuracy_best']:.2f}), chance "
                    f"{pre['held_out_chance']:.2f}, {pre['held_out_cases']} held-out cases"
                )
            lines.append(
                f"| {variant} − {baseline} | {seed} | {found['n_cases']} | {_ci(found['fused'])} | "
                f"{' | '.join(own)} | {described} |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
