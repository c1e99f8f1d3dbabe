"""Ground-truth attribution scores over several seeds: seed means with intervals, and two sets paired.

    .venv/bin/python -m benchmarks.attribution_seeds --new S0.json S1.json S2a.json+S2b.json \\
        [--old OLD0.json OLD1.json OLD2.json] [--scores tabular_auc signed_phrase_affirmed] \\
        [--method ig_expected] [--old-method gradcam] [--resamples 2000]

Each file is the ``--json`` output of :mod:`benchmarks.image_attribution` for one seed's model on the same
scoring cohort (``--every-case``); ``--method`` picks the method's rows (default: the first). For each score
(a per-case column of those rows, e.g. ``tabular_auc``, ``phrase_affirmed``, ``signed_phrase_affirmed``):
the per-seed means and the seed mean on the cases every file scores, with a 95% percentile bootstrap of the
cases (the same resampled cases for every seed); with ``--old`` (the i-th file paired with the i-th new one),
new − old per seed and seed-averaged, paired by case. Then, per file, the notes whose affirmed planted
sentence is not the top-``|attribution|`` phrase, and how many of them have a negated planted sentence on top.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SCORES = [
    "tabular_auc",
    "phrase_affirmed",
    "signed_phrase_affirmed",
    "phrase_negated",
    "signed_phrase_negated",
]


def method_rows(path: Path, method: str | None = None) -> list[dict[str, Any]]:
    """The per-case rows of ``method`` (default: the first) in one ``benchmarks.image_attribution`` JSON, or
    in several joined by ``+`` (one seed's model scored on several runs of cases, ``--skip``)."""
    rows: list[dict[str, Any]] = []
    for part in str(path).split("+"):
        results = json.loads(Path(part).read_text())
        for result in results:
            if method is None or result["label"] == method:
                rows += result["rows"]
                break
        else:
            raise SystemExit(
                f"{part}: no method {method!r}; it holds {', '.join(r['label'] for r in results)}"
            )
    return rows


def _matrix(files: list[list[dict]], score: str, cases: list[str]) -> np.ndarray:
    by_case = [{r["case_id"]: r[score] for r in rows} for rows in files]
    return np.array([[d[c] for c in cases] for d in by_case], dtype=float)


def _common(files: list[list[dict]], score: str) -> list[str]:
    sets = [{r["case_id"] for r in rows if r.get(score) is not None} for rows in files]
    return sorted(set.intersection(*sets)) if sets else []


def _interval(values: list[float]) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def seed_scores(
    new: list[list[dict]], old: list[list[dict]] | None, score: str, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Per-seed means, the seed mean with its interval and, with ``old``, the paired differences."""
    files = new + (old or [])
    cases = _common(files, score)
    if not cases:
        return {"score": score, "n": 0}
    a = _matrix(new, score, cases)
    b = _matrix(old, score, cases) if old else None
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(cases), len(cases)) for _ in range(resamples)]
    out: dict[str, Any] = {
        "score": score,
        "n": len(cases),
        "per_seed": a.mean(1).tolist(),
        "seed_mean": float(a.mean()),
        "seed_mean_interval": _interval([a[:, i].mean() for i in draws]),
    }
    if b is not None:
        out["old_per_seed"] = b.mean(1).tolist()
        out["old_seed_mean"] = float(b.mean())
        out["difference"] = float(a.mean() - b.mean())
        out["difference_interval"] = _interval([a[:, i].mean() - b[:, i].mean() for i in draws])
        out["per_seed_difference"] = [
            (float(a[k].mean() - b[k].mean()), _interval([a[k, i].mean() - b[k, i].mean() for i in draws]))
            for k in range(len(new))
        ]
    return out


def affirmed_misses(rows: list[dict]) -> tuple[int, int]:
    """(notes whose affirmed sentence is not the top phrase, of them those with a negated planted one on top)."""
    missed = [r for r in rows if r.get("phrase_affirmed") == 0]
    return len(missed), sum(1 for r in missed if r.get("phrase_negated") == 1)


def report(result: dict[str, Any]) -> str:
    if not result["n"]:
        return f"{result['score']}: no case scored in every file"
    per_seed = ", ".join(f"{v:.3f}" for v in result["per_seed"])
    low, high = result["seed_mean_interval"]
    line = f"{result['score']} (n {result['n']}): {per_seed}; seed mean {result['seed_mean']:.3f} [{low:.3f}, {high:.3f}]"
    if "difference" in result:
        old = ", ".join(f"{v:.3f}" for v in result["old_per_seed"])
        low, high = result["difference_interval"]
        pairs = "; ".join(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, (lo, hi) in result["per_seed_difference"])
        line += (
            f"; old {old} (seed mean {result['old_seed_mean']:.3f}); new − old {result['difference']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] (per seed {pairs})"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new", type=Path, nargs="+", required=True)
    parser.add_argument("--old", type=Path, nargs="*", default=[])
    parser.add_argument("--scores", nargs="+", default=DEFAULT_SCORES)
    parser.add_argument("--method", help="method label in the files (default: each file's first)")
    parser.add_argument(
        "--old-method",
        help="method label of the --old rows (default: --method); --old may then name the --new files "
        "themselves, to pair two methods on the same cases",
    )
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.old and len(args.old) != len(args.new):
        raise SystemExit(f"--new has {len(args.new)} files and --old {len(args.old)}: pair them seed by seed")
    new = [method_rows(p, args.method) for p in args.new]
    old = [method_rows(p, args.old_method or args.method) for p in args.old] or None
    for score in args.scores:
        print(report(seed_scores(new, old, score, args.resamples)))
    for path, rows in zip(args.new, new, strict=True):
        missed, negated = affirmed_misses(rows)
        print(
            f"{path}: affirmed sentence not the top phrase in {missed} notes; a negated planted one on top in {negated}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
