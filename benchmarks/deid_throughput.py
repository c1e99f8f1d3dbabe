"""De-identification throughput: DICOM files per second and notes per second on an identified cohort.

Synthesises an identified (``--phi``) 3D cohort (32³ volumes; DICOM series of 32 slices and NIfTI) and
de-identifies it with ``mmdx.deid.deidentify_cohort``, timing each phase. Run:

    .venv/bin/python benchmarks/deid_throughput.py --cases 1000 --workers 2

Prints one JSON object (also written with --json PATH). Throughputs are per phase: the image phase covers
reading, de-identifying and writing every DICOM file and cleaning every NIfTI header; the notes phase covers
parsing, scrubbing and writing notes.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.deid.cohort import DeidOptions, deidentify_cohort
from mmdx.deid.key import DeidKey


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--keep", help="keep the cohorts in this folder instead of a temporary one")
    args = parser.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmdx-deid-bench-"))
    identified, deid = base / "identified", base / "deid"
    try:
        start = time.perf_counter()
        synthesize_cohort(
            identified,
            SynthOptions(
                n_cases=args.cases, seed=args.seed, dims=3, size=args.size, phi=True, workers=args.workers
            ),
        )
        synth_seconds = time.perf_counter() - start
        report = deidentify_cohort(identified, deid, DeidKey.generate(), DeidOptions(workers=args.workers))
        data, timings = report.to_dict(), report.timings
        dicom_files = data["dicom"]["files_written"] + data["dicom"]["files_quarantined"]
        notes = data["notes"]["lines"]
        result = {
            "cases": args.cases,
            "volume": f"{args.size}^3",
            "workers": args.workers,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "synth_seconds": round(synth_seconds, 1),
            "dicom_files": dicom_files,
            "nifti_files": data["nifti"]["files"],
            "notes": notes,
            "observation_rows": data["observations"]["rows"],
            "seconds": {k: round(v, 2) for k, v in timings.items()},
            "dicom_files_per_second": round(dicom_files / timings["images"], 1),
            "notes_per_second": round(notes / timings["notes"], 1),
            "cases_per_second_overall": round(args.cases / timings["total"], 2),
        }
        print(json.dumps(result, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
