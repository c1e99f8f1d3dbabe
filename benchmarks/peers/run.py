"""mmdx against its peers on one cohort: one command, resumable.

    .venv/bin/python -m benchmarks.peers.run COHORT [--seeds 0 1 2] [--peers haim widedeep ...]
        [--ablations concat late attention gated | none] [--config configs/demo.yaml]
        [--out benchmarks/out/peers/<cohort>] [--benchmarks-md BENCHMARKS.md | none]
        [--extra-test COHORT ...]

1. Writes the peer-neutral export of the cohort (``export.py``): the same validated cases, splits and
   preprocessing for everyone.
2. Trains and evaluates, for each seed: mmdx with gated attention, each ablation fusion (the one with the
   best mean validation AUROC is shown) and its image-only network (``benchmarks.fusion_ablation``); then
   every peer in its own environment (``setup.sh``): the HAIM recipe, pytorch-widedeep, fusilli's image +
   tabular fusions, and the notes-only and tabular-only baselines.
3. Scores everything on the same test cases: AUROC (mean ± sd over seeds), AUROC with each modality made
   missing at test time (mmdx: masked; peers: made missing as in the export -- tabular values missing
   and imputed as the peer imputes them, empty notes, blank image), training wall time, seconds per epoch,
   prediction latency per case, peak memory, parameters; and the paired bootstrap interval of mmdx minus
   the best peer (difference of seed-averaged AUROCs over the test cases).
4. Prints the Markdown table, writes ``results.json`` and ``table.md`` to ``--out`` and the section of
   ``BENCHMARKS.md`` for this cohort, with this command.

With ``--extra-test``, the peers whose adapters can (``scores_extra`` in ``registry.py``: the HAIM recipe
and the single-modality baselines) also score every case of further test cohorts -- other cohorts of the
same generator, exported like this one (``export.py --like``) -- into
``OUT/records/<key>/seed<N>/predictions_<cohort folder>.csv``, for benchmarks that compare models on many
more test cases than the cohort's own test split (``benchmarks/fov_balance.py``); the table is unchanged.

Every finished (model, seed) is kept in ``--out/records`` and reused, so an interrupted run continues where
it stopped; a model that fails is reported with its reason and tried again on the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks import fusion_ablation
from benchmarks.peers.common import (
    MODALITY_ORDER,
    OutputFile,
    PeerExport,
    PeerModality,
    Split,
    extra_predictions_file,
    probability_column,
)
from benchmarks.peers.export import DEFAULT_CONFIGS, cohort_dims, export_cohort
from benchmarks.peers.registry import (
    ABLATIONS,
    MAIN_ENV,
    MMDX_IMAGE,
    MMDX_MAIN,
    OTHERS,
    PEERS,
    REPO,
    MmdxSpec,
    PeerSpec,
    ablation_spec,
    env_python,
    peer_by_key,
)
from benchmarks.peers.report import (
    MMDX,
    PEER,
    Difference,
    Row,
    aligned_probabilities,
    best_peer,
    inputs_list,
    markdown_table,
    rows_from_records,
    seed_mean_auroc_difference,
    targets,
    write_section,
)
from mmdx.config import load_config
from mmdx.metrics import auroc
from mmdx.run import RunPaths

RECORDS = "records"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------------
# running one model


#: Linux keeps a process's peak resident size across fork and exec, so a command started directly from
#: this (large) process would report at least this process's size. A minimal interpreter starts it
#: instead and reports the peak of its children, which then reflects the command alone.
_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.call(sys.argv[1:], stderr=subprocess.STDOUT)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "sys.stderr.write('\\n' + json.dumps({'rc': rc, 'seconds': time.perf_counter() - t, 'peak_mib': peak}) + '\\n')\n"
)


def run_measured(cmd: list[str], log_file: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` from the repository root, output appended to ``log_file``; returns its exit code, wall
    seconds and peak resident memory in MiB (its largest single process)."""
    with log_file.open("a", encoding="utf-8") as out:
        out.write(f"$ {shlex.join(cmd)}\n")
        out.flush()
        wrapper = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _WRAPPER, *cmd],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
            check=False,
        )
    lines = wrapper.stderr.splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"rc": wrapper.returncode or 1, "seconds": float("nan"), "peak_mib": float("nan")}


def _tail(path: Path, lines: int = 3) -> str:
    if not path.is_file():
        return ""
    text = [
        line.strip()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip()
    ]
    return " / ".join(text[-lines:])[-300:]


def extra_exports_for(spec: PeerSpec, extras: list[PeerExport]) -> list[PeerExport]:
    """The further test cohorts ``spec`` scores: all of them if its adapter can, else none."""
    return extras if spec.scores_extra else []


def peer_record(
    spec: PeerSpec,
    seed: int,
    export: PeerExport,
    out: Path,
    epochs: int,
    patience: int,
    threads: int,
    extras: list[PeerExport] | None = None,
) -> dict:
    """Run one peer adapter for one seed (or reuse its finished record); with ``extras`` (exports of further
    test cohorts), adapters that can also score every case of each."""
    base = {"model": spec.model, "key": spec.key, "group": spec.group, "seed": seed}
    folder = out / RECORDS / spec.key / f"seed{seed}"
    record_file = folder / "record.json"
    scored_extra = extra_exports_for(spec, extras or [])
    extra_keys = {e.directory.name: e.manifest["key"] for e in scored_extra}
    if record_file.is_file():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        same_inputs = record.get("export_key") == export.manifest["key"] and record.get("threads") == threads
        same_inputs = same_inputs and (record.get("extra_keys") or {}) == extra_keys
        if same_inputs and record.get("status") == "ok":
            return record
    python = env_python(spec.env)
    if not python.is_file():
        return base | {
            "status": "failed",
            "reason": f"environment '{spec.env}' missing: run benchmarks/peers/setup.sh",
        }
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / "adapter.log"
    for stale in (log_file, folder / OutputFile.RESULT, folder / OutputFile.PREDICTIONS, record_file):
        stale.unlink(missing_ok=True)
    for stale in folder.glob(extra_predictions_file("*")):
        stale.unlink()
    cmd = [
        str(python),
        "-m",
        spec.module,
        "--export",
        str(export.directory),
        "--out",
        str(folder),
        "--seed",
        str(seed),
        "--epochs",
        str(epochs),
        "--patience",
        str(patience),
        "--threads",
        str(threads),
        *spec.args,
    ]
    for extra in scored_extra:
        cmd += ["--extra-export", str(extra.directory)]
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONWARNINGS": "ignore",
    }
    measured = run_measured(cmd, log_file, env)
    if measured["rc"] != 0 or not (folder / OutputFile.RESULT).is_file():
        return base | {
            "status": "failed",
            "reason": f"exit {measured['rc']}: {_tail(log_file)} (see {log_file})",
        }
    result = json.loads((folder / OutputFile.RESULT).read_text(encoding="utf-8"))
    predictions = pd.read_csv(folder / OutputFile.PREDICTIONS, dtype={"case_id": str})
    y = predictions["label"].to_numpy(dtype=float)
    removed = {}
    for modality in MODALITY_ORDER:
        column = probability_column(modality)
        removed[modality.value] = auroc(y, predictions[column]) if column in predictions else None
    record = base | {
        "status": "ok",
        "export_key": export.manifest["key"],
        "threads": threads,
        "test_auroc": auroc(y, predictions[probability_column(None)]),
        "removed": removed,
        "val_auroc": result.get("val_auroc"),
        "train_seconds": result.get("fit_seconds"),
        "process_seconds": measured["seconds"],
        "seconds_per_epoch": result.get("seconds_per_epoch"),
        "epochs": result.get("epochs"),
        "latency_ms_per_case": 1000 * result["predict_seconds_per_case"],
        "peak_mib": measured["peak_mib"],
        "parameters": result.get("parameters"),
        "inputs": result["inputs"],
        "notes": result.get("notes", ""),
        "versions": result.get("versions", {}),
        "predictions": str(folder / OutputFile.PREDICTIONS),
        "extra_keys": extra_keys,
        "extra_predictions": {name: str(folder / extra_predictions_file(name)) for name in extra_keys},
    }
    record_file.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def mmdx_inputs(config_path: Path, variant: str) -> dict[str, str]:
    """What an mmdx variant was given, from its resolved config."""
    config = load_config(config_path, fusion_ablation.overrides_for(variant))
    model, data = config.model, config.data
    given = {}
    if model.image is not None:
        what = "the volume" if data.image.declared_dims == 3 else "the image"
        shape = data.image.shape
        grid = "×".join(map(str, shape)) if shape != "auto" else "grid fitted to the cohort"
        given[PeerModality.IMAGE.value] = f"{what} ({grid}), {model.image.name}"
    if model.tabular is not None:
        given[PeerModality.TABULAR.value] = (
            f"normalised canonical values with missing indicators, sex/site embeddings, {model.tabular.name}"
        )
    if model.text is not None:
        given[PeerModality.TEXT.value] = f"joined notes (≤{data.text.max_length} tokens), {model.text.name}"
    return given


def mmdx_record(
    spec: MmdxSpec, seed: int, cohort: Path, config: Path, out: Path, export: PeerExport, threads: int
) -> dict:
    """Train and evaluate one mmdx variant for one seed through ``benchmarks.fusion_ablation`` (the thread
    count reaches ``mmdx train`` through ``OMP_NUM_THREADS``, set by :func:`limit_threads`)."""
    base = {"model": spec.model, "key": spec.key, "group": spec.group, "seed": seed}
    runs = out / f"mmdx-threads{threads or '-default'}"
    runs.mkdir(parents=True, exist_ok=True)
    try:
        result = fusion_ablation.run_one(cohort, str(config), spec.variant, seed, runs)
    except SystemExit as failure:  # run_one exits with a message when mmdx train or evaluate fails
        return base | {"status": "failed", "reason": str(failure)[-300:]}
    run = runs / f"{spec.variant}-seed{seed}"
    frame = RunPaths(Path(run)).read_predictions()
    test = frame[(frame["split"] == Split.TEST.value) & frame["label"].notna()]
    folder = out / RECORDS / spec.key / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    test[["case_id", "label", "probability"]].to_csv(folder / OutputFile.PREDICTIONS, index=False)
    training = json.loads((run / "training.json").read_text(encoding="utf-8"))
    inputs = mmdx_inputs(config, spec.variant)
    # the mmdx configs may change between runs: the settings (all but seed and name) are fingerprinted
    resolved = yaml.safe_load((run / "bundle" / "config.yaml").read_text(encoding="utf-8"))
    settings = {k: v for k, v in resolved.items() if k not in ("seed", "name")}
    config_sha = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    removed = {m.value: result["removed"].get(m.value) if m.value in inputs else None for m in MODALITY_ORDER}
    record = base | {
        "status": "ok",
        "export_key": export.manifest["key"],
        "threads": threads,
        "test_auroc": result["test_auroc"],
        "removed": removed,
        "val_auroc": training["result"]["best_val_auroc"],
        "train_seconds": result["train_seconds"],
        "process_seconds": result["train_seconds"],
        "seconds_per_epoch": result["seconds_per_epoch"],
        "epochs": result["epochs"],
        "latency_ms_per_case": result["latency_ms_per_case"],
        "peak_mib": result["train_peak_mib"],
        "parameters": result["parameters"],
        "inputs": inputs,
        "notes": (
            f"{result['epochs']} epochs (best {result['best_epoch']}), data wait "
            f"{100 * result['data_wait_share']:.1f}%, modalities removed by masking"
        ),
        "predictions": str(folder / OutputFile.PREDICTIONS),
        "config_sha": config_sha,
    }
    (folder / "record.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def schedule(specs: list, seeds: list[int], first_seed_only: list[str]) -> list[tuple]:
    """``(spec, seed)`` pairs seed by seed in the order of ``specs``; keys in ``first_seed_only`` get the first
    seed only."""
    return [
        (spec, seed)
        for seed in seeds
        for spec in specs
        if seed == seeds[0] or spec.key not in first_seed_only
    ]


def limit_threads(threads: int) -> None:
    """Give every process started from here ``threads`` OpenMP/MKL threads (0: the libraries' defaults).

    On a CPU shared with other jobs, PyTorch's OpenMP threads spin-wait for each other and a training step
    can take several times longer with two threads than with one (``benchmarks/profile_step.py``); one
    thread per process keeps the comparison stable and fair.
    """
    if threads > 0:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = str(threads)


# --------------------------------------------------------------------------------------------------------
# the report


def choose_ablation(records: list[dict]) -> str | None:
    """The ablation key with the best mean validation AUROC over its finished seeds."""
    scores: dict[str, list[float]] = {}
    for record in records:
        if (
            record["key"].startswith("mmdx_")
            and record.get("status") == "ok"
            and record.get("val_auroc") is not None
        ):
            scores.setdefault(record["key"], []).append(record["val_auroc"])
    ablations = {k: float(np.mean(v)) for k, v in scores.items() if k.removeprefix("mmdx_") in ABLATIONS}
    return max(ablations, key=ablations.get) if ablations else None  # type: ignore[arg-type]


def build_report(
    records: list[dict],
    export: PeerExport,
    command: str,
    n_resamples: int,
    seeds: list[int],
    threads: int = 1,
) -> tuple[str, dict]:
    """The Markdown section and the JSON summary for the records so far."""
    chosen = choose_ablation(records)
    shown = [
        r
        for r in records
        if not (
            r["key"].startswith("mmdx_")
            and r["key"].removeprefix("mmdx_") in ABLATIONS
            and r["key"] != chosen
        )
    ]
    order = [MMDX_MAIN.key, chosen, *(p.key for p in PEERS), MMDX_IMAGE.key]
    rows = sorted(
        rows_from_records(shown), key=lambda r: order.index(r.key) if r.key in order else len(order)
    )
    specs = [MMDX_MAIN, MMDX_IMAGE, *PEERS, *(ablation_spec(v) for v in ABLATIONS)]
    given = {spec.key: spec.given[1 if export.dims == 3 else 0] for spec in specs}
    test = export.index(Split.TEST)
    case_ids = [export.case_ids[i] for i in test]
    y = export.labels[test]
    differences: dict[str, Difference] = {}
    # against the best of every other row, and against the best multimodal peer from another library
    best = best_peer(rows)
    best_multimodal = best_peer([r for r in rows if r.group == PEER])
    comparisons: list[tuple[str, Row, Row, Difference]] = []
    for label, against in (("best peer or baseline", best), ("best multimodal peer", best_multimodal)):
        if against is None or (
            label != "best peer or baseline" and best is not None and against.key == best.key
        ):
            continue
        for row in rows:
            if row.group == MMDX and row.ok:
                diff = seed_mean_auroc_difference(
                    y,
                    aligned_probabilities(row.ok, case_ids),
                    aligned_probabilities(against.ok, case_ids),
                    n_resamples=n_resamples,
                )
                comparisons.append((label, row, against, diff))
                if label == "best peer or baseline":
                    differences[row.key] = diff
    cohort = export.manifest["cohort"]
    counts = export.manifest["labelled_per_split"]
    lines = [
        f"## Peer comparison: {cohort['name']}",
        "",
        f"Reproduce: `{command}`",
        "",
        f"{export.manifest['cases']} cases ({counts['train']} train / {counts['val']} val / {counts['test']} test, "
        f"the cohort's own splits), {export.dims}D images "
        f"{'×'.join(map(str, export.manifest['image']['shape']))}; Bayes-optimal test AUROC "
        f"{cohort.get('bayes_auroc')}. Seeds {', '.join(map(str, seeds))}. Machine: {os.cpu_count()} CPU cores, "
        f"shared with other jobs; {threads or 'default'} thread(s) per model process; times are wall-clock and "
        "comparable within this table only.",
        "",
        markdown_table(rows, given),
        "",
    ]
    for label, row, against, diff in comparisons:
        lines.append(
            f"- **{row.model} − {against.model}** ({label}, by mean test AUROC): {diff.estimate:+.3f}, "
            f"95% CI [{diff.low:+.3f}, {diff.high:+.3f}], p = {diff.p_value:.3f} — paired bootstrap over the "
            f"{diff.n_cases} test cases ({diff.n_resamples} class-stratified resamples), difference of "
            "seed-averaged AUROCs."
        )
    if comparisons:
        lines.append("")
    lines += ["Targets:", *targets(rows, differences, MMDX_MAIN.key, "widedeep"), ""]
    lines += [
        "What each model was given:",
        inputs_list(rows),
        "",
        "Columns: *without X* = test AUROC with modality X missing for every test case (mmdx masks it; a peer "
        "gets it as the export represents a case without it: all tabular values missing, then imputed as that "
        "peer imputes, the empty note, a blank image); *mean drop* = full AUROC minus the mean of those; "
        "*train s* = wall time of the training process for mmdx (cohort validation, preprocessing, training, "
        "calibration) and of preprocessing plus fitting for peers (grid search included); *s/epoch* = mean "
        "training seconds per epoch; *ms/case* = batch prediction time per test case; *peak MiB* = peak "
        "resident memory of the training process.",
    ]
    for row in rows:
        shas = {r.get("config_sha") for r in row.ok if r.get("config_sha")}
        if len(shas) > 1:
            lines.append(
                f"Warning: the seeds of {row.model} ran with {len(shas)} different mmdx configs ({', '.join(sorted(shas))})."
            )
    if chosen:
        lines.append(
            f"The ablation shown is the one with the best mean validation AUROC: {chosen.removeprefix('mmdx_')}."
        )
    summary = {
        "cohort": cohort,
        "command": command,
        "seeds": seeds,
        "threads": threads,
        "best_peer": best.key if best else None,
        "best_multimodal_peer": best_multimodal.key if best_multimodal else None,
        "chosen_ablation": chosen,
        "differences": [
            {"model": row.key, "against": against.key, "comparison": label, **diff.to_dict()}
            for label, row, against, diff in comparisons
        ],
        "records": records,
    }
    return "\n".join(lines), summary


# --------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--peers", nargs="+", default=[p.key for p in OTHERS], help="peer and baseline keys (see registry.py)"
    )
    parser.add_argument(
        "--ablations", nargs="+", default=list(ABLATIONS), help="mmdx ablation fusions, or 'none'"
    )
    parser.add_argument(
        "--no-mmdx", action="store_true", help="skip mmdx's fusions (peers and baselines only)"
    )
    parser.add_argument(
        "--config", type=Path, help="mmdx config (default: configs/demo.yaml for 2D, ct3d.yaml for 3D)"
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default benchmarks/out/peers/<cohort folder>)"
    )
    parser.add_argument(
        "--benchmarks-md", default=str(REPO / "BENCHMARKS.md"), help="file to update, or 'none'"
    )
    parser.add_argument(
        "--first-seed-only",
        nargs="+",
        default=[],
        metavar="KEY",
        help="models trained on the first seed only (slow ones); the table's seeds column says so",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes preprocessing images for the export"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per model process (default 1; 0: library defaults)",
    )
    parser.add_argument(
        "--extra-test",
        type=Path,
        nargs="+",
        default=[],
        metavar="COHORT",
        help="further test cohorts (same generator, other seeds): exported like COHORT and scored, every "
        "case, by the peers that can (HAIM and the single-modality baselines); the table is unchanged",
    )
    args = parser.parse_args(argv)
    cohort = args.cohort.resolve()
    config = (args.config or DEFAULT_CONFIGS[cohort_dims(cohort)]).resolve()
    out = (args.out or REPO / "benchmarks" / "out" / "peers" / cohort.name).resolve()
    selected = [peer_by_key(k) for k in args.peers]
    for key in args.first_seed_only:
        peer_by_key(key)
    peers = [p for p in selected if isinstance(p, PeerSpec)]
    ablations = [] if args.ablations == ["none"] else args.ablations
    for variant in ablations:
        if variant not in ABLATIONS:
            raise SystemExit(f"unknown ablation {variant!r}; choose from {', '.join(ABLATIONS)} or 'none'")
    # the command that reproduces this table: the options that differ from their defaults
    words = [str(args.cohort), "--seeds", *map(str, args.seeds)]
    if args.peers != [p.key for p in OTHERS]:
        words += ["--peers", *args.peers]
    if args.ablations != list(ABLATIONS):
        words += ["--ablations", *args.ablations]
    words += ["--no-mmdx"] if args.no_mmdx else []
    words += ["--first-seed-only", *args.first_seed_only] if args.first_seed_only else []
    words += ["--config", str(args.config)] if args.config else []
    words += ["--threads", str(args.threads)] if args.threads != 1 else []
    words += ["--extra-test", *map(str, args.extra_test)] if args.extra_test else []
    command = ".venv/bin/python -m benchmarks.peers.run " + shlex.join(words)
    limit_threads(args.threads)
    log(f"export of {cohort} -> {out / 'export'}")
    export_cohort(cohort, out / "export", config, args.workers, log=log)
    export = PeerExport(out / "export")
    extras = []
    for extra in args.extra_test:
        extra = extra.resolve()
        log(f"export of the further test cohort {extra} -> {out / 'extra' / extra.name}")
        export_cohort(extra, out / "extra" / extra.name, config, args.workers, log=log, like=export)
        extras.append(PeerExport(out / "extra" / extra.name))
    epochs, patience = export.manifest["train"]["epochs"], export.manifest["train"]["patience"]

    mmdx_specs = [] if args.no_mmdx else [MMDX_MAIN, *(ablation_spec(v) for v in ablations)]
    mmdx_specs += [p for p in selected if isinstance(p, MmdxSpec)]
    records: list[dict] = []

    def report() -> str:
        section, summary = build_report(records, export, command, args.bootstrap, args.seeds, args.threads)
        (out / "results.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        (out / "table.md").write_text(section + "\n", encoding="utf-8")
        return section

    # seed by seed, in an order that puts a useful table on disk early: the fast peers, mmdx, the neural
    # peers, mmdx's single-modality network, then the ablations
    fast = [p for p in peers if p.env in ("haim", MAIN_ENV)]
    neural = [p for p in peers if p not in fast]
    main_specs = [s for s in mmdx_specs if s.group == MMDX and s.variant not in ABLATIONS]
    later_specs = [s for s in mmdx_specs if s not in main_specs]
    later_specs.sort(key=lambda s: s.variant in ABLATIONS)
    for spec, seed in schedule([*fast, *main_specs, *neural, *later_specs], args.seeds, args.first_seed_only):
        if isinstance(spec, PeerSpec):
            record = peer_record(spec, seed, export, out, epochs, patience, args.threads, extras)
        else:
            record = mmdx_record(spec, seed, cohort, config, out, export, args.threads)
        records.append(record)
        outcome = f"test AUROC {record['test_auroc']:.4f}" if record["status"] == "ok" else record["reason"]
        log(f"{spec.key} seed {seed}: {outcome}")
        report()
    section = report()
    print(section)
    if args.benchmarks_md != "none":
        write_section(Path(args.benchmarks_md), f"peers:{cohort.name}", section)
        log(f"section 'peers:{cohort.name}' written to {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
