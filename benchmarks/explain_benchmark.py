"""Explanations: faithfulness, sanity and ground-truth scores of a run, and the cost of explaining a 3D case.

Run from the repository root::

    .venv/bin/python -m benchmarks.explain_benchmark RUN                  # mmdx explain on RUN's test split
    .venv/bin/python -m benchmarks.explain_benchmark RUN --method both --limit 40 --json out.json
    .venv/bin/python -m benchmarks.explain_benchmark --only-3d            # just the 3D DenseNet-121 timing

For the run it prints the seconds per case, the Integrated Gradients convergence deltas, the deletion AUCs
(attribution order against random order, per modality), the randomised-model Spearman correlations and, on
a synthetic cohort, the scores against the planted truth. It then times explaining one case with an
untrained 3D DenseNet-121 at 64^3 (plus the tabular and text encoders of the demo) with Integrated Gradients,
modality Shapley values and, with ``--occlusion-3d``, occlusion; the timings use the machine's threads.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from mmdx.explain.attribution import auto_internal_batch_size, explain
from mmdx.explain.inputs import ExplainInputs, make_baselines
from mmdx.explain.shapley import modality_shapley
from mmdx.keys import MODALITIES, Keys
from mmdx.models.classifier import build_model


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run_benchmark(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from mmdx.workflows.explain import explain_run

    start = time.perf_counter()
    bar = tqdm(desc="explaining", unit="case", disable=args.quiet)
    summary = explain_run(
        args.run,
        split=args.split,
        method=args.method,
        limit=args.limit,
        n_steps=args.steps,
        internal_batch_size=args.internal_batch_size,
        check_cases=args.check_cases,
        image_baseline=args.image_baseline,
        progress=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)),
    ).summary
    bar.close()
    summary["wall_seconds"] = time.perf_counter() - start
    print(
        f"run {args.run}: {summary['n_cases']} cases in {summary['wall_seconds']:.1f} s (all checks included)"
    )
    for name, section in summary["methods"].items():
        print(f"\n[{name}]  {summary['seconds_per_case'][name]:.3f} s per case (attribution only)")
        delta = section.get("convergence_delta") or {}
        if delta.get("n_cases"):
            print(
                f"  convergence |delta|: median {delta['abs_median']:.2e}  p95 {delta['abs_p95']:.2e}  "
                f"max {delta['abs_max']:.2e}  (relative median {delta['relative_median']:.2e})"
            )
        print("  deletion AUC (probability; lower = faster drop)   attribution   random   n")
        for modality, curve in (section.get("deletion") or {}).items():
            if curve.get("n_cases"):
                print(
                    f"    {modality:8s} {curve['auc_attribution']:38.3f} {curve['auc_random']:8.3f} "
                    f"{curve['n_cases']:4d}"
                )
        randomised = section.get("randomisation") or {}
        for modality in ("image", "tabular", "text"):
            value = randomised.get(modality) or {}
            if value.get("n_cases"):
                print(
                    f"  randomised model, Spearman |attr| {modality:8s} "
                    f"mean {_fmt(value['spearman_abs_mean'])}  "
                    f"signed {_fmt(value['spearman_signed_mean'])}"
                )
        truth = section.get("ground_truth")
        if truth:
            for label, rows in (
                ("lesion", "lesion_cases"),
                ("true-positive lesion", "true_positive_lesion_cases"),
            ):
                image = truth["image"][rows]
                print(
                    f"  truth image ({label}, n={image['n_cases']}): mass in lesion "
                    f"{_fmt(image['mass_share_in_lesion'])} (chance {_fmt(image['mass_share_chance'])}), "
                    f"pointing game {_fmt(image['pointing_game'])}"
                )
            tab = truth["tabular"]
            print(
                f"  truth tabular (n={tab['n_cases']}): causal-vs-other ranking AUC "
                f"{_fmt(tab['ranking_auc_causal_vs_noncausal'])}, "
                f"top feature causal {_fmt(tab['top_feature_causal'])} "
                f"(chance {_fmt(tab['top_feature_causal_chance'])})"
            )
            for status in ("affirmed", "negated"):
                text = truth["text"][status]
                print(
                    f"  truth text {status} (n={text['n_cases']}): top word in planted phrase "
                    f"{_fmt(text['top_word_in_phrase'])} (chance {_fmt(text['chance'])})"
                )
    return summary


def densenet_3d_timing(size: int, steps: int, internal_batch_size: int | None, occlusion: bool) -> dict:
    """Seconds to explain one case with an untrained 3D DenseNet-121 at ``size``^3 plus demo encoders."""
    torch.manual_seed(0)
    n_features, vocab, length = 21, 1500, 96
    model = build_model(
        image={"name": "densenet121", "spatial_dims": 3},
        tabular={"name": "ft_transformer", "n_features": n_features, "categorical_cardinalities": [3, 4]},
        text={"name": "transformer", "vocab_size": vocab, "dim": 64, "depth": 2, "max_length": length},
        fusion={"name": "gated_attention", "dim": 64},
    ).eval()
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(1, length, dtype=torch.long)
    mask[:, :70] = 1
    batch = {
        Keys.CASE_ID: ["volume"],
        Keys.IMAGE: torch.rand(1, 1, size, size, size, generator=generator),
        Keys.TABULAR: torch.randn(1, n_features, generator=generator),
        Keys.TABULAR_MISSING: torch.zeros(1, n_features),
        Keys.CATEGORICAL: torch.tensor([[1, 2]]),
        Keys.TEXT_IDS: torch.randint(4, vocab, (1, length), generator=generator) * mask,
        Keys.TEXT_MASK: mask,
        Keys.PRESENCE: torch.ones(1, len(MODALITIES), dtype=torch.bool),
    }
    inputs = ExplainInputs.from_batch(batch)
    baselines = make_baselines(inputs)
    if internal_batch_size is None:
        internal_batch_size = auto_internal_batch_size((size,) * 3)
    out: dict = {"size": size, "n_steps": steps, "internal_batch_size": internal_batch_size}
    began = time.perf_counter()
    (explanation,) = explain(model, inputs, baselines, n_steps=steps, internal_batch_size=internal_batch_size)
    out["integrated_gradients_seconds"] = time.perf_counter() - began
    out["convergence_delta"] = explanation.convergence_delta
    began = time.perf_counter()
    modality_shapley(model, batch)
    out["shapley_seconds"] = time.perf_counter() - began
    if occlusion:
        began = time.perf_counter()
        explain(
            model, inputs, baselines, method="occlusion", occlusion_window=size // 4, internal_batch_size=8
        )
        out["occlusion_seconds"] = time.perf_counter() - began
        out["occlusion_window"] = size // 4
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["threads"] = torch.get_num_threads()
    print(
        f"\n3D DenseNet-121 at {size}^3 (untrained), one case, {torch.get_num_threads()} threads: "
        f"IG {steps} steps (internal batch {internal_batch_size}) "
        f"{out['integrated_gradients_seconds']:.1f} s, "
        f"|delta| {abs(explanation.convergence_delta):.2e}; Shapley {out['shapley_seconds']:.2f} s"
        + (f"; occlusion ({size // 4}^3 patches) {out['occlusion_seconds']:.1f} s" if occlusion else "")
        + f"; peak RSS {out['peak_rss_mib']:.0f} MiB"
    )
    return out


def main() -> None:
    from mmdx.workflows.explain import method_choices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run directory (trained and evaluated)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--method", default="both", choices=method_choices())
    parser.add_argument("--limit", type=int)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--internal-batch-size", type=int)
    parser.add_argument("--check-cases", type=int, default=32)
    parser.add_argument("--image-baseline", default="air", choices=["air", "blur"])
    parser.add_argument("--size", type=int, default=64, help="side of the 3D timing volume (default 64)")
    parser.add_argument(
        "--internal-batch-size-3d",
        type=int,
        help="volumes per forward pass (default: explain's automatic size)",
    )
    parser.add_argument(
        "--occlusion-3d", action="store_true", help="also time occlusion in 3D (slow on a CPU)"
    )
    parser.add_argument("--only-3d", action="store_true")
    parser.add_argument("--skip-3d", action="store_true")
    parser.add_argument("--json", type=Path, help="write every number to this file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if not args.only_3d and not args.run:
        parser.error("give a run directory, or --only-3d")

    record: dict = {}
    if not args.only_3d:
        record["run"] = run_benchmark(args)
    if not args.skip_3d:
        record["densenet121_3d"] = densenet_3d_timing(
            args.size, args.steps, args.internal_batch_size_3d, args.occlusion_3d
        )
    if args.json:
        args.json.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
        print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
