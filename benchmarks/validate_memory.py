"""Peak memory of ``mmdx validate`` on a cohort with and without two image bombs.

The bombs (:mod:`mmdx.data.synth.bombs`) are a 452-byte ``.nii`` whose header declares 512 x 512 x 1000
float64 voxels and a 2 MB ``.nii.gz`` that inflates to 2 GiB; each is the image of one extra case (with a
note, so the case stays usable). The same synthetic cohort is validated without them and with them, each
``--repeats`` times, in a fresh process; the peak resident memory of that process (``ru_maxrss`` of the
child, so ``--workers 1`` keeps all decoding in it) is recorded. The difference is what the bombs cost.

    .venv/bin/python benchmarks/validate_memory.py --cases 600 --dims 2 --repeats 3
    .venv/bin/python benchmarks/validate_memory.py --cases 200 --dims 3 --repeats 3

``--source DIR`` validates with the mmdx package found in DIR instead (e.g. an older checkout, to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.synth.bombs import write_gzip_bomb, write_lying_nifti

#: Run in a fresh interpreter: validates the cohort and prints the peak RSS of the validating process.
_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def add_bombs(clean: Path, target: Path) -> None:
    """A copy of ``clean`` with two extra cases whose images are the bombs."""
    shutil.copytree(clean, target)
    folder = target / "bombs"
    folder.mkdir()
    write_lying_nifti(folder / "liar.nii")
    write_gzip_bomb(folder / "bomb.nii.gz")
    cases = pd.read_csv(target / "cases.csv", dtype=str, keep_default_na=False)
    extra = []
    for case_id, image in (("bomb-liar", "bombs/liar.nii"), ("bomb-gzip", "bombs/bomb.nii.gz")):
        row = dict.fromkeys(cases.columns, "") | {"case_id": case_id, "patient_id": f"P-{case_id}"}
        extra.append(row | {"image": image, "label": "1", "split": "train"})
    pd.concat([cases, pd.DataFrame(extra)], ignore_index=True).to_csv(target / "cases.csv", index=False)
    with (target / "notes.jsonl").open("a", encoding="utf-8") as handle:
        for row in extra:
            handle.write(json.dumps({"case_id": row["case_id"], "text": "Chest pain."}) + "\n")


def peak_mib(cohort: Path, source: Path | None) -> tuple[int, float]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    command = [sys.executable, "-m", "pipelines.cli", "validate", str(cohort), "--workers", "1"]
    # run from the source folder: "-m" puts the working directory first on sys.path
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=str(source) if source is not None else None,
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--dims", type=int, choices=(2, 3), default=2)
    parser.add_argument("--size", type=int, default=None, help="image size (default: 32 in 2D, 16 in 3D)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source", type=Path, help="validate with the mmdx package of this folder")
    parser.add_argument("--keep", type=Path, help="build the cohorts here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="mmdx-validate-memory-"))
    clean, bombed = base / "clean", base / "with-bombs"
    if not clean.exists():
        size = args.size or (32 if args.dims == 2 else 16)
        synthesize_cohort(clean, SynthOptions(n_cases=args.cases, seed=args.seed, dims=args.dims, size=size))
    if not bombed.exists():
        add_bombs(clean, bombed)
    runs: dict[str, list[float]] = {"clean": [], "with_bombs": []}
    exit_codes = set()
    for _ in range(args.repeats):  # interleaved, so that machine load hits both alike
        for name, cohort in (("clean", clean), ("with_bombs", bombed)):
            code, mib = peak_mib(cohort, args.source)
            exit_codes.add(code)
            runs[name].append(mib)
    differences = [b - a for a, b in zip(runs["clean"], runs["with_bombs"], strict=True)]
    result = {
        "cases": args.cases,
        "dims": args.dims,
        "seed": args.seed,
        "repeats": args.repeats,
        "source": str(args.source) if args.source else "this checkout",
        "validate_exit_codes": sorted(exit_codes),
        "peak_mib": {k: [round(v, 1) for v in values] for k, values in runs.items()},
        "median_peak_mib": {k: round(statistics.median(v), 1) for k, v in runs.items()},
        "difference_mib": [round(d, 1) for d in differences],
        "median_difference_mib": round(statistics.median(differences), 1),
        "max_difference_mib": round(max(differences), 1),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
