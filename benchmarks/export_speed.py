"""Export speed of ``mmdx export`` on a 100-case run, and what dciodvfy says about every exported object.

Builds a run the way the dashboard's sample run is built (a synthetic 3D cohort of DICOM series, the tiny
model of ``mmdx.workflows.sample_run.sample_config``, one epoch, evaluated), explains ``--cases`` of its DICOM cases
with ``mmdx explain`` (Integrated Gradients, no checks), then times, ``--repeats`` times each:

* ``dir``: ``mmdx export RUN --to DIR`` (Parametric Map + SR), and with ``--segmentation --overlay``;
* ``dicomweb``: the same by STOW-RS into a throwaway Orthanc on 127.0.0.1 (Debian's ``orthanc`` and
  ``orthanc-dicomweb``), the source studies uploaded first as a hospital PACS would hold them.

Finally every file of the full export goes through ``dciodvfy`` (Debian's ``dicom3tools``); errors and the
distinct warnings per object kind are counted. Run:

    .venv/bin/python benchmarks/export_speed.py --cases 100 --json /work/data/export_speed.json

Prints one JSON object (also written with --json PATH). Times are wall-clock seconds of the export workflow
(reading the explanations and source headers, building the objects, writing or sending them).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mmdx.dicomweb.connection import AuthKind, DicomwebSettings, Secret
from mmdx.dicomweb.orthanc import TemporaryOrthanc
from mmdx.export.dciodvfy import verify
from mmdx.export.registry import ExportDestination
from mmdx.workflows.export import export_run
from mmdx.workflows.sample_run import build_sample_run, cases_with_image, explained_copy


def _build(base: Path, n_cases: int, size: int, seed: int) -> tuple[Path, Path]:
    run = build_sample_run(base / "built", dims=3, n_cases=n_cases, size=size, seed=seed)
    return run, base / "built" / "cohort"


def _timed(repeats: int, call) -> dict:
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - began)
    return {
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "cases": len(result.exported),
        "objects": result.n_objects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100, help="explained DICOM cases to export")
    parser.add_argument("--cohort-cases", type=int, default=260, help="cases synthesised (enough DICOM ones)")
    parser.add_argument(
        "--size", type=int, default=32, help="volume side (slices of size x size, size slices)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--keep", help="keep the run and exports in this folder instead of a temporary one")
    args = parser.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmdx-export-bench-"))
    try:
        began = time.perf_counter()
        built, cohort = _build(base, args.cohort_cases, args.size, args.seed)
        cases = cases_with_image(built, cohort, args.cases)
        if len(cases) < args.cases:
            raise SystemExit(f"only {len(cases)} DICOM cases were predicted; raise --cohort-cases")
        run = explained_copy(built, base / "run", cases)
        prepared_s = time.perf_counter() - began

        timings = {}
        for name, extra in (("dir", {}), ("dir_seg_overlay", {"segmentation": True, "overlay": True})):
            out = base / f"export-{name}"

            def to_dir(out=out, extra=extra):
                shutil.rmtree(out, ignore_errors=True)
                return export_run(run, "dir", ExportDestination(str(out)), progress=False, **extra)

            timings[name] = _timed(args.repeats, to_dir)

        with TemporaryOrthanc() as pacs:
            for case in cases:
                folder = cohort / "images" / case
                pacs.upload(sorted(folder.glob("*.dcm")) if folder.is_dir() else [])
            settings = DicomwebSettings(
                pacs.dicomweb_url, AuthKind.BASIC, pacs.username, Secret(pacs.password)
            )
            timings["dicomweb_stow"] = _timed(
                args.repeats,
                lambda: export_run(
                    run, "dicomweb", ExportDestination(settings.url, settings), progress=False
                ),
            )

        files = sorted((base / "export-dir_seg_overlay").glob("*/*.dcm"))
        errors = 0
        warnings: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for path in files:
            report = verify(path)
            errors += len(report.errors)
            for line in report.warnings:
                warnings[path.stem][line] += 1
        result = {
            "cases": len(cases),
            "volume": f"{args.size}x{args.size}x{args.size} (DICOM series of {args.size} slices)",
            "repeats": args.repeats,
            "seed": args.seed,
            "timings": timings,
            "seconds_per_case": {k: round(v["median_s"] / len(cases), 4) for k, v in timings.items()},
            "dciodvfy": {
                "files": len(files),
                "errors": errors,
                "warnings": {kind: dict(counter) for kind, counter in sorted(warnings.items())},
            },
            "preparation_s": round(prepared_s, 1),
            "cpu_count": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        }
        text = json.dumps(result, indent=1)
        print(text)
        if args.json:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
