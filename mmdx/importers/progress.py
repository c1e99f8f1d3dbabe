"""Progress bars and the closing summary of ``mmdx import`` (shared by the sources' command-line runs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mmdx.importers.output import ImportResult, Progress


@contextmanager
def progress_bar(what: str, unit: str = "unit") -> Iterator[Progress]:
    """A tqdm bar (hidden when not on a terminal) as a ``progress(done, total, unit)`` callback."""
    from tqdm import tqdm

    with tqdm(total=None, desc=what, unit=unit, unit_scale=unit == "B", leave=False, disable=None) as bar:

        def progress(done: int, total: int | None, current: str) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(current[-40:], refresh=False)
            bar.refresh()

        yield progress


def print_result(result: ImportResult) -> None:
    report = result.report
    counts = report["counts"]
    print(
        f"wrote {report['cases']} cases ({report['observations']} observations, {report['notes']} notes, "
        f"{report['images']} images) to {result.out}"
        + (f"; resumed after {result.resumed_units} committed units" if result.resumed_units else "")
    )
    not_attached = {
        k: v
        for k, v in counts.items()
        if k in ("AFTER_INDEX_TIME", "BEFORE_LOOKBACK_WINDOW", "UNDATED_WITH_INDEX_TIME", "other_encounter")
    }
    if not_attached:
        print(
            "records of the listed patients not attached: "
            + ", ".join(f"{n} {reason}" for reason, n in sorted(not_attached.items()))
        )
    if report["issues_by_code"]:
        print(
            "issues: "
            + ", ".join(f"{n} {code}" for code, n in report["issues_by_code"].items())
            + " (listed in import_report.json)"
        )
    if report.get("dicomweb_images"):
        endpoints = report.get("dicomweb_endpoints") or ["URL"]
        print(
            f"{report['dicomweb_images']} cases reference their image by DICOMweb (dicomweb:<study>/<series>); "
            f"fetch them with: mmdx import dicomweb {endpoints[0]} {result.out}"
        )
    print(f"next: mmdx validate {result.out}")
