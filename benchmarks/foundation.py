"""Foundation benchmark: time and peak memory of `mmdx synth` and `mmdx validate`, and validation throughput.

    .venv/bin/python -m benchmarks.foundation [--cases 1000] [--tabular-cases 10000] [--out benchmarks/out]

1. `mmdx synth OUT --cases 1000 --dims 3 --size 32` (DICOM series and NIfTI volumes): wall time, peak RSS.
2. `mmdx validate` on it (every image decoded): wall time, peak RSS, cases/s.
3. Validation throughput for a 10,000-case cohort of observations and notes only (images removed from the
   cases table): cases/s.

Each command runs in its own process; peak memory is the largest resident set of that process tree
(``ru_maxrss`` of waited-for children, i.e. the largest single process, workers included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd


def _measure(cmd: list[str]) -> dict:
    """Run ``cmd`` in a fresh process; wall seconds and peak RSS (MiB) of it and its children."""
    wrapper = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys, json, time;"
        "t = time.perf_counter(); rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL);"
        "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t,"
        " 'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))",
        *cmd,
    ]
    out = subprocess.run(wrapper, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed with exit status {result['rc']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--tabular-cases", type=int, default=10_000)
    parser.add_argument("--out", default="benchmarks/out/foundation")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    mmdx = [sys.executable, "-m", "pipelines.cli"]
    results: dict = {"cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()}

    cohort = out / "ct3d"
    results["synth"] = _measure(
        [
            *mmdx,
            "synth",
            str(cohort),
            "--cases",
            str(args.cases),
            "--dims",
            "3",
            "--size",
            "32",
            "--seed",
            "1",
            "--workers",
            str(args.workers),
        ]
    )
    results["validate"] = _measure([*mmdx, "validate", str(cohort), "--workers", str(args.workers)])
    results["validate"]["cases_per_second"] = args.cases / results["validate"]["seconds"]

    tab = out / "tabular_notes"
    subprocess.run(
        [
            *mmdx,
            "synth",
            str(tab),
            "--cases",
            str(args.tabular_cases),
            "--dims",
            "2",
            "--size",
            "16",
            "--seed",
            "2",
            "--workers",
            str(args.workers),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cases = pd.read_csv(tab / "cases.csv", dtype=str, keep_default_na=False)
    cases["image"] = ""
    cases.to_csv(tab / "cases.csv", index=False)
    shutil.rmtree(tab / "images")
    results["validate_tabular_notes"] = _measure([*mmdx, "validate", str(tab)])
    results["validate_tabular_notes"]["cases_per_second"] = (
        args.tabular_cases / results["validate_tabular_notes"]["seconds"]
    )
    results["load_average_at_end"] = os.getloadavg()

    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("| step | wall (s) | peak RSS (MiB) | throughput |\n|---|---|---|---|")
    print(
        f"| synth {args.cases} cases, 3D 32³ | {results['synth']['seconds']:.1f} | {results['synth']['peak_mib']:.0f} | "
        f"{args.cases / results['synth']['seconds']:.1f} cases/s |"
    )
    v = results["validate"]
    print(
        f"| validate {args.cases} cases (images decoded) | {v['seconds']:.1f} | {v['peak_mib']:.0f} | {v['cases_per_second']:.1f} cases/s |"
    )
    t = results["validate_tabular_notes"]
    print(
        f"| validate {args.tabular_cases} cases, observations + notes only | {t['seconds']:.1f} | {t['peak_mib']:.0f} | "
        f"{t['cases_per_second']:.0f} cases/s |"
    )
    print(
        f"load average (1/5/15 min) at start {results['load_average_at_start']}, at end {results['load_average_at_end']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
