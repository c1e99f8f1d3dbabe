"""Fusion ablation benchmark: the fused model, every ablation fusion and each single modality, several seeds.

    .venv/bin/python -m benchmarks.fusion_ablation COHORT [--config configs/ct3d.yaml] [--seeds 0 1 2]
        [--variants gated_attention attention gated concat late image tabular text] [--out benchmarks/out/ablation]
        [--jobs 2] [--threads 1] [--set KEY=VALUE ...]

For each variant and seed: `mmdx train` then `mmdx evaluate` in fresh processes; collects test AUROC, the
test AUROC with each modality removed at test time, training throughput, the share of step time spent
waiting for data from the second epoch on, peak memory and prediction latency per case. Prints a Markdown
table (mean ± sd over seeds) next to the cohort's Bayes-optimal AUROC. Finished runs are reused, so an
interrupted benchmark continues where it stopped. ``--jobs`` runs that many trainings at once, each with
``--threads`` PyTorch threads (one thread per process is the fastest use of a small CPU: see
benchmarks/profile_step.py); ``--set`` adds config overrides to every run. A finished run is reused whatever
the overrides, so give other settings their own ``--out``.
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

from mmdx.models.fusion import FUSIONS as FUSIONS_REGISTRY

#: every registered fusion, in the registry's order (a new fusion joins the ablation by being registered)
FUSIONS = FUSIONS_REGISTRY.names()
SINGLE = {
    "image": ["model.tabular=null", "model.text=null"],
    "tabular": ["model.image=null", "model.text=null"],
    "text": ["model.image=null", "model.tabular=null"],
}


def overrides_for(variant: str) -> list[str]:
    if variant in FUSIONS:
        return [f"model.fusion.name={variant}"]
    if variant in SINGLE:
        return SINGLE[variant]
    raise SystemExit(f"unknown variant {variant!r}; choose from {FUSIONS + list(SINGLE)}")


def _run(cmd: list[str], log: Path) -> dict:
    wrapper = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys, json, time;"
        "t = time.perf_counter(); log = open(sys.argv[1], 'a');"
        "rc = subprocess.call(sys.argv[2:], stdout=log, stderr=log);"
        "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t,"
        " 'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))",
        str(log),
        *cmd,
    ]
    result = json.loads(
        subprocess.run(wrapper, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    )
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {result['rc']}); see {log}")
    return result


def run_one(
    cohort: Path,
    config: str,
    variant: str,
    seed: int,
    out: Path,
    extra: tuple[str, ...] = (),
    threads: int | None = None,
) -> dict:
    run = out / f"{variant}-seed{seed}"
    done = run / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    if run.exists():
        import shutil

        shutil.rmtree(run)
    mmdx = [sys.executable, "-m", "pipelines.cli"]
    sets = [f"seed={seed}", f"name={variant}-seed{seed}", *extra, *overrides_for(variant)]
    if threads:
        sets.append(f"train.threads={threads}")
    train_cmd = [*mmdx, "train", "--config", config, "--cohort", str(cohort), "--out", str(run), "--quiet"]
    for item in sets:
        train_cmd += ["--set", item]
    log = out / f"{variant}-seed{seed}.log"
    train = _run(train_cmd, log)
    evaluate = _run([*mmdx, "evaluate", str(run), "--workers", "0" if threads else "2"], log)
    metrics = json.loads((run / "metrics.json").read_text())
    training = json.loads((run / "training.json").read_text())
    history = training["result"]["history"]
    later = history[1:] or history
    result = {
        "variant": variant,
        "seed": seed,
        "test_auroc": metrics["splits"]["test"]["auroc"],
        "removed": {k: v["auroc"] for k, v in metrics["modality_removed"].items() if k != "none"},
        "bayes_auroc": metrics.get("bayes_auroc"),
        "epochs": len(history),
        "best_epoch": training["result"]["best_epoch"],
        "train_seconds": train["seconds"],
        "seconds_per_epoch": statistics.mean(h["seconds"] for h in history),
        "samples_per_second": statistics.mean(h["samples_per_second"] for h in later),
        "data_wait_share": statistics.mean(h["data_wait_share"] for h in later),
        "train_peak_mib": train["peak_mib"],
        "evaluate_peak_mib": evaluate["peak_mib"],
        "latency_ms_per_case": 1000 * metrics["latency_seconds_per_case"],
        "parameters": training["parameters"],
    }
    done.write_text(json.dumps(result, indent=1))
    return result


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(results: list[dict]) -> str:
    lines = [
        "| model | test AUROC | without image | without tabular | without text | s/epoch | samples/s | data wait "
        "| peak MiB | ms/case | parameters |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    variants = list(dict.fromkeys(r["variant"] for r in results))
    for variant in variants:
        rows = [r for r in results if r["variant"] == variant]
        removed = {
            m: [r["removed"][m] for r in rows if m in r["removed"]] for m in ("image", "tabular", "text")
        }
        lines.append(
            f"| {variant} | {_ms([r['test_auroc'] for r in rows])} | {_ms(removed['image'])} | "
            f"{_ms(removed['tabular'])} | {_ms(removed['text'])} | "
            f"{statistics.mean(r['seconds_per_epoch'] for r in rows):.1f} | "
            f"{statistics.mean(r['samples_per_second'] for r in rows):.0f} | "
            f"{100 * statistics.mean(r['data_wait_share'] for r in rows):.1f}% | "
            f"{max(r['train_peak_mib'] for r in rows):.0f} | {statistics.mean(r['latency_ms_per_case'] for r in rows):.2f} | "
            f"{rows[0]['parameters']:,} |"
        )
    bayes = next((r["bayes_auroc"] for r in results if r.get("bayes_auroc")), None)
    if bayes:
        lines.append(f"| Bayes-optimal (cohort.yaml) | {bayes:.3f} | | | | | | | | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--config", default="configs/ct3d.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=FUSIONS + list(SINGLE))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/ablation"))
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="PyTorch threads per training (default 1; 0: PyTorch's default)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    for variant in args.variants:
        overrides_for(variant)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    jobs = [(variant, seed) for seed in args.seeds for variant in args.variants]

    def one(job: tuple[str, int]) -> dict:
        variant, seed = job
        result = run_one(
            args.cohort, args.config, variant, seed, args.out, tuple(args.overrides), args.threads or None
        )
        print(
            f"[{time.perf_counter() - started:6.0f} s] {variant} seed {seed}: test AUROC {result['test_auroc']:.4f}",
            flush=True,
        )
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, jobs))
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
