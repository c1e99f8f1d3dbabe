"""How mmdx training scales with the cohort: seconds per epoch and peak memory for growing 3D cohorts.

    .venv/bin/python -m benchmarks.scaling [--sizes 500 1000 2000 4000] [--epochs 2] [--cache disk memory]
        [--workers 0 2] [--config configs/ct3d.yaml] [--cohorts /work/data/scaling] [--threads 1]
        [--out benchmarks/out/scaling]

For each size a synthetic 3D cohort (32³ volumes, ``mmdx synth --seed 7``) is written once under
``--cohorts`` (an existing cohort there is reused). Then, for each image cache mode (``data.cache.mode``:
``disk`` keeps the preprocessed volumes in ``.npz`` files read on every access, ``memory`` also keeps them
in the training process) and each number of data-loader worker processes (``data.loader.workers``),
``mmdx train`` runs for ``--epochs`` epochs (no early stopping) in its own process. Recorded: seconds per
epoch (from the run's ``training.json``; the last epoch is the steady state, the first also starts the
loader), samples/s, the share of step time spent waiting for data, and the peak resident memory of the
largest process of the run (``ru_maxrss``; loader workers are separate processes).

Expected: time per epoch grows linearly with the number of cases (constant milliseconds per case), and
with the disk cache the peak memory stays flat, while the memory cache grows by the size of the volumes
(32³ float32 = 128 KiB per case). All runs share one image cache folder, so only the first run on a cohort
decodes its DICOM files (before training starts: it does not count in the epoch times). Finished runs are
reused, so the benchmark can be interrupted and resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


SETTINGS_NOTE = """\
What the settings do:
- `data.cache.mode=disk`: each preprocessed volume is an `.npz` file (keyed by the image file and the
  preprocessing settings), decoded once before the first epoch and read from disk at every access; the
  training process holds one batch of volumes at a time, so its memory does not grow with the cohort.
- `data.cache.mode=memory`: the same files, plus a copy of every volume in the training process (32³ float32:
  128 KiB per case), loaded before the first epoch: no file reads while training, memory grows linearly with
  the cohort. Loader workers are forked from the training process and share its copy (copy-on-write; each
  worker's resident size counts the shared pages too).
- `data.loader.workers=N`: N processes read and collate batches while the main process trains; worth it when
  the data-wait share is high (slow disks, large volumes, the disk cache); with small volumes already in
  memory they only add start-up time and inter-process copies."""


@dataclass(frozen=True)
class Setting:
    cases: int
    cache: str
    workers: int

    @property
    def name(self) -> str:
        return f"n{self.cases}-{self.cache}-w{self.workers}"


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least squares ``y = a + b x``: ``(a, b, r2)``; r2 is 1 for a perfect line (NaN with < 3 points)."""
    if len(x) < 2:
        return float("nan"), float("nan"), float("nan")
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((v - mx) ** 2 for v in x)
    b = sum((u - mx) * (v - my) for u, v in zip(x, y, strict=True)) / sxx if sxx else float("nan")
    a = my - b * mx
    total = sum((v - my) ** 2 for v in y)
    residual = sum((v - (a + b * u)) ** 2 for u, v in zip(x, y, strict=True))
    r2 = 1 - residual / total if len(x) > 2 and total > 0 else float("nan")
    return a, b, r2


def summarise(result: dict) -> dict:
    """The numbers of one run from its ``training.json`` summary and the process measurement."""
    history = result["training"]["result"]["history"]
    last = history[-1]
    train_cases = round(last["samples_per_second"] * last["seconds"])
    return {
        "seconds_per_epoch": statistics.fmean(h["seconds"] for h in history),
        "last_epoch_seconds": last["seconds"],
        "first_epoch_seconds": history[0]["seconds"],
        "samples_per_second": last["samples_per_second"],
        "data_wait_share": last["data_wait_share"],
        "ms_per_case": 1000 * last["seconds"] / max(1, train_cases),
        "train_cases": train_cases,
        "peak_mib": result["peak_mib"],
        "process_seconds": result["seconds"],
    }


def table(rows: list[tuple[Setting, dict]]) -> str:
    lines = [
        "| cases | cache | workers | s/epoch (last) | first epoch s | ms/case | samples/s | data wait | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, s in rows:
        lines.append(
            f"| {setting.cases} | {setting.cache} | {setting.workers} | {s['last_epoch_seconds']:.1f} | "
            f"{s['first_epoch_seconds']:.1f} | {s['ms_per_case']:.2f} | {s['samples_per_second']:.0f} | "
            f"{100 * s['data_wait_share']:.1f}% | {s['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def trends(rows: list[tuple[Setting, dict]]) -> list[str]:
    """Per (cache, workers): the linear fit of seconds per epoch and of peak memory against the cases."""
    out = []
    for cache, workers in sorted({(s.cache, s.workers) for s, _ in rows}):
        group = sorted(
            ((s.cases, r) for s, r in rows if (s.cache, s.workers) == (cache, workers)), key=lambda t: t[0]
        )
        if len(group) < 2:
            continue
        n = [float(c) for c, _ in group]
        _, slope, r2 = linear_fit(n, [r["last_epoch_seconds"] for _, r in group])
        _, memory_slope, _ = linear_fit(n, [r["peak_mib"] for _, r in group])
        out.append(
            f"- cache {cache}, {workers} workers: {1000 * slope:.2f} ms per added case per epoch (R² {r2:.3f}); "
            f"peak memory {1000 * memory_slope:+.0f} MiB per 1,000 cases "
            f"({group[0][1]['peak_mib']:.0f} MiB at {group[0][0]} cases, {group[-1][1]['peak_mib']:.0f} at {group[-1][0]})"
        )
    return out


def ensure_cohort(folder: Path, cases: int, seed: int) -> Path:
    from benchmarks.peers.run import run_measured

    if (folder / "cohort.yaml").is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing a {cases}-case 3D cohort to {folder}", flush=True)
    cmd = [sys.executable, "-m", "pipelines.cli", "synth", str(folder), "--cases", str(cases), "--dims", "3"]
    measured = run_measured(
        [*cmd, "--size", "32", "--seed", str(seed), "--workers", "2"], folder.parent / f"synth-{cases}.log"
    )
    if measured["rc"] != 0:
        raise SystemExit(f"mmdx synth failed for {cases} cases; see {folder.parent / f'synth-{cases}.log'}")
    return folder


def run_setting(setting: Setting, cohort: Path, config: Path, epochs: int, out: Path) -> dict:
    from benchmarks.peers.run import run_measured

    run = out / setting.name
    done = run / "result.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    if run.exists():
        shutil.rmtree(run)
    overrides = [
        f"train.epochs={epochs}",
        f"train.patience={epochs + 1}",
        "train.min_epochs=1",
        f"data.cache.mode={setting.cache}",
        f"data.cache.dir={out / 'cache'}",
        f"data.loader.workers={setting.workers}",
        "data.validate_workers=2",  # cohort validation decodes every image; it precedes the timed epochs
        f"name={setting.name}",
    ]
    cmd = [sys.executable, "-m", "pipelines.cli", "train", "--config", str(config), "--cohort", str(cohort)]
    cmd += ["--out", str(run / "run"), "--quiet", *(a for o in overrides for a in ("--set", o))]
    run.mkdir(parents=True)
    measured = run_measured(cmd, run / "train.log")
    if measured["rc"] != 0:
        raise SystemExit(f"mmdx train failed for {setting.name}; see {run / 'train.log'}")
    training = json.loads((run / "run" / "training.json").read_text(encoding="utf-8"))
    result = summarise({"training": training, **measured}) | {"setting": setting.__dict__}
    done.write_text(json.dumps(result, indent=1), encoding="utf-8")
    shutil.rmtree(run / "run" / "checkpoints", ignore_errors=True)  # weights are not needed here
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cache", nargs="+", choices=["disk", "memory"], default=["disk", "memory"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ct3d.yaml")
    parser.add_argument("--cohorts", type=Path, default=Path("/work/data/scaling"))
    parser.add_argument("--seed", type=int, default=7, help="synthetic cohort seed")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads per training process (0: default)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "scaling")
    parser.add_argument(
        "--benchmarks-md", default=str(REPO / "BENCHMARKS.md"), help="file to update, or 'none'"
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[Setting, dict]] = []
    for cases in sorted(args.sizes):
        cohort = ensure_cohort(args.cohorts / f"ct3d_{cases}", cases, args.seed)
        for cache in args.cache:
            for workers in args.workers:
                setting = Setting(cases, cache, workers)
                result = run_setting(setting, cohort, args.config.resolve(), args.epochs, out)
                rows.append((setting, result))
                print(
                    f"{setting.name}: {result['last_epoch_seconds']:.1f} s/epoch, {result['peak_mib']:.0f} MiB peak",
                    flush=True,
                )
                (out / "results.json").write_text(
                    json.dumps([{**s.__dict__, **r} for s, r in rows], indent=1), encoding="utf-8"
                )
    report = "\n".join([table(rows), "", *trends(rows)])
    (out / "table.md").write_text(report + "\n", encoding="utf-8")
    print(report)
    if args.benchmarks_md != "none":
        from benchmarks.peers.report import write_section

        command = " ".join(
            [
                "nice -n 10 .venv/bin/python -m benchmarks.scaling",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
        section = "\n".join(
            [
                "## Training scaling: time per epoch and peak memory against cohort size",
                "",
                f"Reproduce: `{command}`",
                "",
                f"mmdx train with {args.config.name}, {args.epochs} epochs per run, {args.threads or 'default'} "
                f"thread(s) per process, on a {os.cpu_count()}-core machine shared with other jobs.",
                "",
                report,
                "",
                SETTINGS_NOTE,
            ]
        )
        write_section(Path(args.benchmarks_md), "scaling", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
