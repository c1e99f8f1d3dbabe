"""Time ``mmdx audit``: the report of the demo run and of a 2,000-case run, with 1,000 bootstrap resamples.

Run from the repository root::

    .venv/bin/python -m benchmarks.audit_speed                        # builds both runs once, then times
    .venv/bin/python -m benchmarks.audit_speed --demo-run runs/demo   # time an existing run instead

Runs missing from ``--work`` (default ``benchmarks/out/audit_speed``) are built first, as ``mmdx demo``
builds its run: a synthetic 2D cohort with planted defects (600 cases for the demo, 2,000 for the large
run), ``configs/demo.yaml``, evaluation, and Integrated Gradients on 60 test cases. The audit's cost does
not depend on how long the model trained (the architecture, cohort and split sizes set it), so the
2,000-case run trains for ``--large-epochs`` epochs only.

For each run it times, best of ``--repeats``: the whole report (``build_report``), each section, and the
HTML/JSON writing (figures included). The model re-runs of the robustness section use ``--threads`` torch
threads. Results are printed and written to ``WORK/audit_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_run(work: Path, name: str, cases: int, epochs: int | None, explain_limit: int) -> Path:
    """Synthesise, train, evaluate and explain a run as ``mmdx demo`` does, unless it exists."""
    from mmdx.config import load_config
    from mmdx.data.synth import SynthOptions, synthesize_cohort
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.explain import explain_run
    from mmdx.workflows.train import train_run

    run = work / "runs" / name
    if (run / "explanations" / "summary.json").is_file():
        return run
    cohort = work / "cohorts" / name
    if not (cohort / "cohort.yaml").is_file():
        print(f"[{name}] synthesising {cases} cases", flush=True)
        synthesize_cohort(cohort, SynthOptions(n_cases=cases, seed=0, dims=2, defects=True, workers=2))
    overrides = [f"train.epochs={epochs}"] if epochs else []
    started = time.perf_counter()
    print(f"[{name}] training ({'config epochs' if not epochs else f'{epochs} epochs'})", flush=True)
    train_run(load_config(REPO / "configs" / "demo.yaml", overrides), cohort, run, progress=False)
    print(f"[{name}] evaluating and explaining", flush=True)
    evaluate_run(run, workers=2)
    explain_run(run, split="test", limit=explain_limit, workers=2)
    print(f"[{name}] built in {time.perf_counter() - started:.0f} s", flush=True)
    return run


def time_audit(run: Path, n_resamples: int, threads: int | None, repeats: int, out: Path) -> dict:

    from mmdx.audit.report import AuditOptions, build_report, write_report
    from mmdx.run import RunPaths

    options = AuditOptions(n_resamples=n_resamples, threads=threads)
    best: dict | None = None
    for _ in range(repeats):
        timings: dict[str, float] = {}
        started = time.perf_counter()
        document = build_report(run, options=options, timings=timings)
        built = time.perf_counter() - started
        started = time.perf_counter()
        write_report(document, out)
        written = time.perf_counter() - started
        if best is None or built + written < best["total_s"]:
            best = {"build_s": built, "write_s": written, "total_s": built + written, "sections_s": timings}
    frame = RunPaths(Path(run)).read_predictions()
    assert best is not None
    return {
        "run": str(run),
        "cases": int(len(frame)),
        "test_cases": int((frame["split"] == "test").sum()),
        "n_resamples": n_resamples,
        "threads": threads,
        "statuses": {k: v["status"] for k, v in document["sections"].items()},
        "html_bytes": (out / "audit_report.html").stat().st_size,
        **best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "audit_speed")
    parser.add_argument("--demo-run", type=Path, help="an existing demo run (default: build one in --work)")
    parser.add_argument("--large-run", type=Path, help="an existing 2,000-case run (default: build one)")
    parser.add_argument("--large-cases", type=int, default=2000)
    parser.add_argument("--demo-epochs", type=int, help="epochs of the demo run (default: the config's)")
    parser.add_argument("--large-epochs", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the model re-runs (default 1)"
    )
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    demo = args.demo_run or build_run(args.work, "demo", 600, args.demo_epochs, 60)
    large = args.large_run or build_run(
        args.work, f"cases{args.large_cases}", args.large_cases, args.large_epochs, 60
    )
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "runs": {},
    }
    for name, run in (("demo", demo), ("large", large)):
        result = time_audit(run, args.bootstrap, args.threads, args.repeats, args.work / "reports" / name)
        results["runs"][name] = result
        slowest = sorted(result["sections_s"].items(), key=lambda kv: -kv[1])[:4]
        print(
            f"{name}: {result['cases']} cases ({result['test_cases']} test), {args.bootstrap} resamples: "
            f"report {result['total_s']:.1f} s (build {result['build_s']:.1f} s, write {result['write_s']:.1f} s); "
            f"slowest sections: " + ", ".join(f"{k} {v:.1f} s" for k, v in slowest),
            flush=True,
        )
    (args.work / "audit_speed.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"results: {args.work / 'audit_speed.json'}")


if __name__ == "__main__":
    main()
