"""The balanced-training targets on a cohort whose field of view is not ours, scored on large extra test cohorts.

    .venv/bin/python -m benchmarks.fov_balance TEST_COHORT [TEST_COHORT ...]
        [--runs /work/data/fov/bench_aug] [--seeds 0 1 2] [--peers-out DIR] [--peer haim]
        [--train TRAIN_COHORT --unimodal tabular text --concat-seeds 0 1 2 [--config configs/ct3d.yaml]]
        [--out /work/data/fovbal/bench] [--threads 1] [--resamples 2000] [--name results]

The default fused models (``RUNS/planned-fused-seed<S>``) and the image-only models
(``RUNS/planned-image-seed<S>``, with ``mmdx predict`` output on every test cohort) are the runs of
``benchmarks/plan_fov.py``; they are read, never written. Each fused bundle is run on every case of the
TEST_COHORTs intact and with each modality removed (the audit's definition, ``benchmarks.balance``), keeping
each encoder's own head's logit; outputs are cached per run and cohort under ``OUT/outputs``. With
``--train``, the single-modality references (``--unimodal``: the default config with the other encoders
``null``) and the ``concat`` fused models (``--concat-seeds``, under the training strategy the default fused
models were trained with, read from their bundles) are trained first (``benchmarks.balance
.train_one``, one at a time, into ``OUT/runs``); without it, whatever of them is already there is scored.
The peer (``--peer``, default the HAIM recipe) comes from a ``benchmarks.peers.run --extra-test`` output
folder (``--peers-out``), whose records hold its predictions on every case of each test cohort; the
single-modality peer baselines there (LightGBM on values, TF-IDF on notes) are shown beside the mmdx ones.

Scored on the labelled test cases every fused model, the peer and the Bayes oracle have, pooled over the
cohorts (``benchmarks.balance.score`` for the fused and concat runs: AUROC, each encoder's own AUROC, AUROC
lost when each modality is removed, calibration slope/intercept with bootstrap intervals, ECE beside the
ECE of a perfectly calibrated model on the same cases), and, as paired class-stratified bootstrap
intervals per seed and of the seed-averaged AUROCs (``benchmarks.peers.report.seed_mean_auroc_difference``):

1. AUROC lost when the image is removed (target ≥ 0.02);
2. fused − peer (target > 0);
3. each encoder's own head − its single-modality model, on the cases that have the modality (target ≥ −0.03);
4. calibration slope in [0.9, 1.1] and intercept in [−0.1, 0.1] (bootstrap intervals), per seed;
5. gated_attention − concat (target ≥ 0: at least level).

A verdict is "met" when the whole interval lies inside the target, "not met" when it lies wholly outside,
else "not resolved". Prints a Markdown report and writes ``NAME.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import balance
from benchmarks.plan_fov import oracle_scores, pooled_predictions, predictions_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FUSION = "gated_attention"
IMAGE_LOSS_TARGET = 0.02
OWN_HEAD_MARGIN = 0.03
SLOPE_RANGE = (0.9, 1.1)
INTERCEPT_RANGE = (-0.1, 0.1)
#: the single-modality peer baselines shown beside mmdx's single-modality models
PEER_SINGLE = {"tabular": "gbm_tabular", "text": "tfidf_text"}


def interval_verdict(low: float, high: float, lower: float | None = None, upper: float | None = None) -> str:
    """ "met" when ``[low, high]`` lies inside the target ``[lower, upper]`` (either end open when None),
    "not met" when it lies wholly outside, else "not resolved" (the interval includes a boundary)."""
    if (lower is not None and high < lower) or (upper is not None and low > upper):
        return "not met"
    if (lower is None or low >= lower) and (upper is None or high <= upper):
        return "met"
    return "not resolved"


def combined_verdict(verdicts: list[str]) -> str:
    """Several seeds' verdicts as one: met when every one is, not met when any is."""
    if not verdicts:
        return "not run"
    if all(v == "met" for v in verdicts):
        return "met"
    return "not met" if "not met" in verdicts else "not resolved"


def peer_probabilities(records: Path, key: str, seed: int, tests: list[Path]) -> pd.Series | None:
    """A peer's probabilities on every case of the test cohorts (``benchmarks.peers.run --extra-test``),
    indexed ``cohort-name/case_id``; None when its record for ``seed`` lacks a cohort."""
    folder = records / "records" / key / f"seed{seed}"
    frames = []
    for test in tests:
        path = folder / f"predictions_{test.name}.csv"
        if not path.is_file():
            return None
        frame = pd.read_csv(path, dtype={"case_id": str})
        frames.append(pd.Series(frame["probability"].to_numpy(), index=test.name + "/" + frame["case_id"]))
    return pd.concat(frames)


def _aligned(outputs: dict[str, np.ndarray], key: str, cases: np.ndarray) -> np.ndarray:
    position = {c: i for i, c in enumerate(outputs["case_id"])}
    return outputs[key][[position[c] for c in cases]]


def _difference(y: np.ndarray, a: list[np.ndarray], b: list[np.ndarray], resamples: int) -> dict:
    from benchmarks.peers.report import seed_mean_auroc_difference

    return seed_mean_auroc_difference(y, np.stack(a), np.stack(b), n_resamples=resamples).to_dict()


def _per_seed(y: np.ndarray, a: dict[int, np.ndarray], b: dict[int, np.ndarray], resamples: int) -> dict:
    """Per seed present in both, and of the seed-averaged AUROCs (``mean``)."""
    seeds = [s for s in a if s in b]
    if not seeds:
        return {}
    out: dict = {str(s): _difference(y, [a[s]], [b[s]], resamples) for s in seeds}
    if len(seeds) > 1:
        out["mean"] = _difference(y, [a[s] for s in seeds], [b[s] for s in seeds], resamples)
    return out


class Scored:
    """The fused runs' outputs on the common cases, and what the comparisons need."""

    def __init__(self, outputs: dict[int, dict[str, np.ndarray]], tests: list[Path], extra: list[pd.Series]):
        oracle = pd.concat([oracle_scores(test) for test in tests])
        common = set(oracle.index)
        for out in outputs.values():
            common &= {
                c for c, label in zip(out["case_id"], out["label"], strict=True) if not np.isnan(label)
            }
        for series in extra:
            common &= set(series.index)
        self.cases = np.array(sorted(common))
        first = next(iter(outputs.values()))
        self.y = _aligned(first, "label", self.cases).astype(int)
        self.outputs = outputs

    def fused(self, key: str = "p") -> dict[int, np.ndarray]:
        return {s: _aligned(out, key, self.cases) for s, out in self.outputs.items() if key in out}

    def series(self, values: pd.Series) -> np.ndarray:
        return values.loc[self.cases].to_numpy(dtype=float)


def own_head_comparisons(
    scored: Scored, references: dict[str, dict[int, dict[str, np.ndarray]]], resamples: int
) -> dict:
    """Each encoder's own head minus each reference single-modality model (``{modality: {seed: outputs}}``
    with ``case_id`` and ``p``), on the common cases that have the modality and that every reference
    seed scored."""
    result: dict = {}
    for modality, by_seed in references.items():
        own = scored.fused(f"own_{modality}")
        if not own or not by_seed:
            continue
        have = np.all([~np.isnan(v) for v in own.values()], axis=0)
        for out in by_seed.values():
            known = set(out["case_id"][~np.isnan(out["label"])])
            have &= np.array([c in known for c in scored.cases])
        cases, y = scored.cases[have], scored.y[have]
        heads = {s: balance._sigmoid(v[have]) for s, v in own.items()}
        refs = {s: _aligned(out, "p", cases) for s, out in by_seed.items()}
        result[modality] = {"n_cases": int(have.sum()), "differences": _per_seed(y, heads, refs, resamples)}
    return result


def _outputs_of_predictions(run: Path, tests: list[Path]) -> dict[str, np.ndarray]:
    frame = pooled_predictions(run, tests)
    return {
        "case_id": frame.index.to_numpy(),
        "label": frame["label"].to_numpy(dtype=float),
        "p": frame["probability"].to_numpy(dtype=float),
    }


def _peer_outputs(peers_out: Path, key: str, seeds: list[int], tests: list[Path]) -> dict[int, dict]:
    found = {}
    for seed in seeds:
        series = peer_probabilities(peers_out, key, seed, tests)
        if series is not None:
            labels = np.zeros(len(series))  # only ``case_id`` and ``p`` are read; labels come from mmdx
            found[seed] = {"case_id": series.index.to_numpy(), "label": labels, "p": series.to_numpy()}
    return found


def reference_models(args: argparse.Namespace) -> dict[str, dict[str, dict[int, dict]]]:
    """``{reference name: {modality: {seed: outputs}}}``: mmdx's single-modality models (image-only runs of
    ``plan_fov``, the unimodal runs under OUT/runs) and the peers' single-modality baselines."""
    refs: dict[str, dict[str, dict[int, dict]]] = {"mmdx": {}, "peer baseline": {}}
    images = {
        s: _outputs_of_predictions(args.runs / f"planned-image-seed{s}", args.tests)
        for s in args.seeds
        if all(predictions_file(args.runs / f"planned-image-seed{s}", t).is_file() for t in args.tests)
    }
    if images:
        refs["mmdx"]["image"] = images
    cache = args.out / "outputs"
    trained = {
        (m, s): unimodal_run(args, m, s)
        for m in ("tabular", "text")
        for s in args.seeds
        if (unimodal_run(args, m, s) / "bundle" / "manifest.json").is_file()
    }
    predict_sharing_validation(list(trained.values()), args.tests, cache)  # one validation per cohort
    for modality in ("tabular", "text"):
        done = {s: run for (m, s), run in trained.items() if m == modality}
        if done:
            refs["mmdx"][modality] = {s: balance.test_outputs(r, args.tests, cache) for s, r in done.items()}
        if args.peers_out is not None:
            peer = _peer_outputs(args.peers_out, PEER_SINGLE[modality], args.seeds, args.tests)
            if peer:
                refs["peer baseline"][modality] = peer
    return refs


def predict_sharing_validation(runs: list[Path], tests: list[Path], cache_dir: Path) -> None:
    """Cache the outputs (``balance.cohort_outputs``) of bundles without an image encoder on every test
    cohort, validating each cohort once for all of them: ``prepare_inputs`` validates per bundle, and
    without an image there is no plan to apply, so the inputs differ only by each bundle's preprocessing."""
    from mmdx.bundle import load_bundle
    from mmdx.data.dataset import MultimodalDataset, build_case_table
    from mmdx.data.validation import validate_cohort
    from mmdx.keys import Modality
    from mmdx.predict import CohortInputs

    for test in tests:
        todo = [run for run in runs if not (cache_dir / run.name / f"{test.name}.npz").is_file()]
        if not todo:
            continue
        cohort = validate_cohort(test, workers=1)
        for run in todo:
            bundle = load_bundle(run / "bundle")
            if Modality.IMAGE in bundle.preprocessing.modalities:
                raise ValueError(f"{run} has an image encoder: its inputs need the bundle's image plan")
            table = build_case_table(cohort, bundle.preprocessing)
            inputs = CohortInputs(cohort, table, MultimodalDataset(table, bundle.preprocessing, None), None)
            found = balance.cohort_outputs(bundle, test, inputs)
            (cache_dir / run.name).mkdir(parents=True, exist_ok=True)
            np.savez(cache_dir / run.name / f"{test.name}.npz", **found)
            print(f"{run.name} on {test.name}: {len(found['case_id'])} cases", flush=True)


def unimodal_run(args: argparse.Namespace, modality: str, seed: int) -> Path:
    return args.out / "runs" / f"unimodal-{modality}-{DEFAULT_FUSION}-seed{seed}"


def fused_strategy(runs: Path, seeds: list[int], config: Path) -> str:
    """The ``train.strategy`` the default fused models were trained with (their bundles' config), which
    the concat models share; the config's own when no fused bundle is there yet."""
    import yaml

    from mmdx.config import load_config

    for seed in seeds:
        saved = runs / f"planned-fused-seed{seed}" / "bundle" / "config.yaml"
        if saved.is_file():
            return str(yaml.safe_load(saved.read_text(encoding="utf-8"))["train"]["strategy"])
    return load_config(config).train.strategy


def concat_run(args: argparse.Namespace, seed: int) -> Path:
    return args.out / "runs" / f"{args.strategy}-concat-seed{seed}"


def train_references(args: argparse.Namespace) -> None:
    """Train, one at a time, the unimodal references then the concat models not trained yet."""
    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    jobs = [(f"unimodal-{m}", DEFAULT_FUSION, s) for s in args.seeds for m in args.unimodal]
    jobs += [(args.strategy, "concat", s) for s in args.concat_seeds]
    for strategy, fusion, seed in jobs:
        print(f"training {strategy}-{fusion}-seed{seed}", flush=True)
        balance.train_one(strategy, fusion, seed, args.train, args.config, runs, args.threads, [])


def _ci(d: dict) -> str:
    return f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def _seeded_row(
    target: str, by_seed: dict, lower: float, n_cases: int | None = None
) -> tuple[str, str, str, str]:
    """One targets-table row from per-seed intervals (and their seed ``mean``, which decides when present)."""
    decisive = by_seed.get("mean", next(iter(by_seed.values())))
    seeds = ", ".join(f"seed {k} {_ci(v)}" for k, v in by_seed.items() if k != "mean")
    numbers = f"seed mean {_ci(decisive)}; {seeds}" if "mean" in by_seed else seeds
    n = n_cases if n_cases is not None else decisive["n_cases"]
    return target, numbers, str(n), interval_verdict(decisive["low"], decisive["high"], lower=lower)


def target_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """``(target, numbers, n, verdict)`` for the targets table."""
    rows = []
    if results["image_loss"]:
        target = f"1. removing the image costs ≥ {IMAGE_LOSS_TARGET} AUROC"
        rows.append(_seeded_row(target, results["image_loss"], IMAGE_LOSS_TARGET))
    peer_target = f"2. fused − {results['settings']['peer']} > 0"
    if results["fused_minus_peer"]:
        rows.append(_seeded_row(peer_target, results["fused_minus_peer"], 0.0))
    else:
        rows.append((peer_target, "peer not scored", "-", "not run"))
    for source, by_modality in results["own_head"].items():
        for modality, found in by_modality.items():
            target = f"3. own {modality} head − {source} {modality}-only ≥ −{OWN_HEAD_MARGIN}"
            rows.append(_seeded_row(target, found["differences"], -OWN_HEAD_MARGIN, found["n_cases"]))
    calibration = results["calibration"]
    for what, bounds in (("slope", SLOPE_RANGE), ("intercept", INTERCEPT_RANGE)):
        verdicts = [interval_verdict(c[what]["low"], c[what]["high"], *bounds) for c in calibration.values()]
        cells = ", ".join(f"seed {s} {_ci(c[what])}" for s, c in calibration.items())
        rows.append(
            (
                f"4. calibration {what} in [{bounds[0]}, {bounds[1]}]",
                cells,
                str(results["n_cases"]),
                combined_verdict(verdicts),
            )
        )
    ece = ", ".join(
        f"seed {s} {c['ece']:.3f} (calibrated model: {c['ece_reference']['mean']:.3f} "
        f"[{c['ece_reference']['low']:.3f}, {c['ece_reference']['high']:.3f}])"
        for s, c in calibration.items()
    )
    rows.append(("4. ECE (15 bins) beside a perfectly calibrated model's", ece, str(results["n_cases"]), "-"))
    concat_target = "5. gated_attention − concat ≥ 0 (at least level)"
    if results["gated_minus_concat"]:
        rows.append(_seeded_row(concat_target, results["gated_minus_concat"], 0.0))
    else:
        rows.append((concat_target, "no concat model trained", "-", "not run"))
    return rows


def report(results: dict, balance_results: dict) -> str:
    lines = [
        f"test cases {results['n_cases']} ({results['n_positive']} positive), pooled over "
        f"{', '.join(Path(t).name for t in results['settings']['tests'])}; fused seeds "
        f"{', '.join(map(str, results['settings']['seeds']))}",
        "",
        balance.report(balance_results),
        "",
        "| model | seeds | test AUROC per seed |",
        "|---|---|---|",
    ]
    for name, aurocs in results["aurocs"].items():
        lines.append(f"| {name} | {', '.join(aurocs)} | {', '.join(f'{v:.3f}' for v in aurocs.values())} |")
    lines += ["", "| target | estimate [95% interval] | n | verdict |", "|---|---|---|---|"]
    lines += [f"| {t} | {numbers} | {n} | {verdict} |" for t, numbers, n, verdict in target_rows(results)]
    return "\n".join(lines)


def score(args: argparse.Namespace) -> tuple[dict, dict]:
    from mmdx.metrics import auroc

    fused_runs = {s: args.runs / f"planned-fused-seed{s}" for s in args.seeds}
    concat_runs = {
        s: concat_run(args, s)
        for s in args.seeds
        if (concat_run(args, s) / "bundle" / "manifest.json").is_file()
    }
    cache = args.out / "outputs"
    outputs = {s: balance.test_outputs(run, args.tests, cache) for s, run in fused_runs.items()}
    peer = {}
    if args.peers_out is not None:
        peer = {
            s: series
            for s in args.seeds
            if (series := peer_probabilities(args.peers_out, args.peer, s, args.tests)) is not None
        }
    scored = Scored(outputs, args.tests, list(peer.values()))
    runs = {(args.strategy, DEFAULT_FUSION, s): run for s, run in fused_runs.items()}
    runs.update({(args.strategy, "concat", s): run for s, run in concat_runs.items()})
    balance_results = balance.score(runs, args.tests, args.resamples, cache_dir=cache, baseline=args.strategy)
    if balance_results["n_cases"] != len(scored.cases):
        print(
            f"note: {balance_results['n_cases']} cases in the fused/concat table, {len(scored.cases)} with the "
            "peer's predictions too",
            flush=True,
        )
    fused = scored.fused()
    peer_p = {s: scored.series(v) for s, v in peer.items()}
    concat = {
        s: _aligned(balance.test_outputs(r, args.tests, cache), "p", scored.cases)
        for s, r in concat_runs.items()
    }
    references = reference_models(args)
    results: dict = {
        "n_cases": len(scored.cases),
        "n_positive": int(scored.y.sum()),
        "aurocs": {
            f"fused ({DEFAULT_FUSION})": {str(s): auroc(scored.y, p) for s, p in fused.items()},
            "fused without image": {
                str(s): auroc(scored.y, p) for s, p in scored.fused("without_image").items()
            },
            "concat": {str(s): auroc(scored.y, p) for s, p in concat.items()},
            args.peer: {str(s): auroc(scored.y, p) for s, p in peer_p.items()},
        },
        "image_loss": _per_seed(scored.y, fused, scored.fused("without_image"), args.resamples),
        "fused_minus_peer": _per_seed(scored.y, fused, peer_p, args.resamples),
        "gated_minus_concat": _per_seed(scored.y, fused, concat, args.resamples),
        "own_head": {
            source: own_head_comparisons(scored, by_modality, args.resamples)
            for source, by_modality in references.items()
        },
        "calibration": {
            str(s): balance_results["runs"][f"{args.strategy}-{DEFAULT_FUSION}-seed{s}"]["calibration"]
            for s in args.seeds
        },
        "settings": {
            "tests": [str(t) for t in args.tests],
            "runs": str(args.runs),
            "seeds": args.seeds,
            "peer": args.peer,
            "peers_out": str(args.peers_out),
            "unimodal": {
                m: [s for s in args.seeds if (unimodal_run(args, m, s) / "bundle").is_dir()]
                for m in args.unimodal
            },
            "concat_seeds": sorted(concat_runs),
            "resamples": args.resamples,
        },
    }
    results["aurocs"] = {k: v for k, v in results["aurocs"].items() if v}
    return results, balance_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tests", type=Path, nargs="+", metavar="test")
    parser.add_argument("--runs", type=Path, default=Path("/work/data/fov/bench_aug"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--peers-out", type=Path, help="output folder of benchmarks.peers.run --extra-test")
    parser.add_argument("--peer", default="haim", help="the peer key compared with the fused model")
    parser.add_argument("--train", type=Path, help="training cohort: train the references not trained yet")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ct3d.yaml")
    parser.add_argument("--unimodal", nargs="*", default=["tabular", "text"], choices=["tabular", "text"])
    parser.add_argument("--concat-seeds", type=int, nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=Path("/work/data/fovbal/bench"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--name", default="results", help="results are written to OUT/NAME.json")
    args = parser.parse_args(argv)
    args.strategy = fused_strategy(args.runs, args.seeds, args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MMDX_CACHE_DIR", str(args.out / "cache"))
    if args.train is not None:
        train_references(args)
    import torch

    torch.set_num_threads(args.threads)
    results, balance_results = score(args)
    results["balance"] = balance_results
    (args.out / f"{args.name}.json").write_text(
        json.dumps(results, indent=1, default=float), encoding="utf-8"
    )
    print(report(results, balance_results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
