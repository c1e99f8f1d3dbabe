"""Run the image reader over the whole pydicom test corpus and count what loads and what is refused why.

The corpus is pydicom's own test files and the pydicom-data package, read from the installed packages
(no download). Every file and every folder is given to ``read_image``; a folder is read as a series.

Run from the repository root::

    .venv/bin/python -m benchmarks.dicom_corpus
    .venv/bin/python -m benchmarks.dicom_corpus --json dicom_corpus.json --files

Prints one table: entries loaded, entries refused per reason code (with examples), and the time taken.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pydicom

from mmdx.data.imaging import read_image
from mmdx.data.issues import ImageReadError

LOADED = "LOADED"


def corpus_roots() -> list[tuple[str, Path]]:
    roots = [("pydicom", Path(pydicom.__file__).parent / "data" / "test_files")]
    try:
        import data_store
    except ImportError:
        return roots
    return [*roots, ("pydicom-data", Path(data_store.__file__).parent / "data")]


def corpus_entries() -> list[tuple[str, Path]]:
    return [
        (f"{name}/{path.relative_to(root).as_posix()}", path)
        for name, root in corpus_roots()
        for path in sorted(root.rglob("*"))
        if path.is_file() or path.is_dir()
    ]


def run(entries: list[tuple[str, Path]]) -> dict:
    outcomes: dict[str, str] = {}
    seconds: dict[str, float] = {}
    crashed: dict[str, str] = {}
    for key, path in entries:
        start = time.perf_counter()
        try:
            read_image(path)
            outcomes[key] = LOADED
        except ImageReadError as exc:
            outcomes[key] = str(exc.issue.code)
        except Exception as exc:  # the reader promises this never happens; count it if it does
            outcomes[key] = "CRASH"
            crashed[key] = f"{type(exc).__name__}: {exc}"
        seconds[key] = time.perf_counter() - start
    examples: dict[str, list[str]] = defaultdict(list)
    for key, outcome in outcomes.items():
        examples[outcome].append(key.rsplit("/", 1)[-1])
    counts = Counter(outcomes.values())
    slowest = max(seconds, key=seconds.__getitem__)
    return {
        "entries": len(entries),
        "files": sum(1 for _, p in entries if p.is_file()),
        "folders": sum(1 for _, p in entries if p.is_dir()),
        "counts": dict(sorted(counts.items(), key=lambda item: (item[0] != LOADED, -item[1], item[0]))),
        "examples": {code: names[:4] for code, names in examples.items()},
        "total_seconds": round(sum(seconds.values()), 3),
        "slowest": {"entry": slowest, "seconds": round(seconds[slowest], 3)},
        "crashed": crashed,
        "outcomes": outcomes,
        "pydicom": pydicom.__version__,
    }


def print_table(result: dict) -> None:
    print(
        f"{result['entries']} entries ({result['files']} files, {result['folders']} folders), pydicom {result['pydicom']}"
    )
    print(f"{'outcome':<30} {'count':>5}  examples")
    for code, count in result["counts"].items():
        print(f"{code:<30} {count:>5}  {', '.join(result['examples'][code])}")
    print(
        f"total {result['total_seconds']:.2f} s; slowest {result['slowest']['entry']} ({result['slowest']['seconds']:.2f} s)"
    )
    if result["crashed"]:
        print("CRASHES (exceptions other than ImageReadError):")
        for key, message in result["crashed"].items():
            print(f"  {key}: {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the result as JSON to OUT")
    parser.add_argument("--files", action="store_true", help="list the outcome of every entry in the JSON")
    args = parser.parse_args()
    result = run(corpus_entries())
    print_table(result)
    if args.json:
        if not args.files:
            result.pop("outcomes")
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if result["crashed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
