"""The harness: running adapters as measured subprocesses, resuming, failing loudly, choosing and reporting."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks.peers.adapters.fusilli_fusion import blocks_that_fit
from benchmarks.peers.adapters.gbm import design
from benchmarks.peers.common import EXPORT_SCHEMA, ExportFile, PeerExport, PeerModality, TabularDesign
from benchmarks.peers.registry import MAIN_ENV, OTHERS, PEERS, PeerSpec, peer_by_key
from benchmarks.peers.report import MMDX, PEER, SINGLE
from benchmarks.peers.run import (
    build_report,
    choose_ablation,
    extra_exports_for,
    peer_record,
    run_measured,
    schedule,
)
from mmdx.metrics import auroc


def write_export(directory: Path, n: int = 80, seed: int = 0) -> PeerExport:
    """A hand-made export whose notes say the label ("consolidation" in most positive cases)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    ids = [f"C{i:03d}" for i in range(n)]
    labels = rng.permutation(np.r_[np.ones(n // 2), np.zeros(n - n // 2)])
    splits = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    pd.DataFrame(
        {"case_id": ids, "split": splits, "label": labels, "has_image": 1, "has_tabular": 1, "has_text": 1}
    ).to_csv(directory / ExportFile.CASES, index=False)
    crp = np.where(labels == 1, 80.0, 20.0) + rng.normal(0, 30, n)
    crp[::7] = np.nan
    pd.DataFrame(
        {"case_id": ids, "crp": crp, "age": rng.uniform(20, 90, n), "sex=F": 1.0 * (rng.random(n) < 0.5)}
    ).assign(**{"sex=M": lambda f: 1.0 - f["sex=F"]}).to_csv(directory / ExportFile.TABULAR, index=False)
    words = ["cough", "fever", "stable", "reviewed", "mobilising"]
    with (directory / ExportFile.NOTES).open("w") as fh:
        for case_id, label in zip(ids, labels, strict=True):
            text = " ".join(rng.choice(words, 4))
            if label == 1 and rng.random() < 0.85:
                text += " new consolidation on imaging"
            elif rng.random() < 0.2:
                text += " no consolidation seen"
            fh.write(json.dumps({"case_id": case_id, "text": text}) + "\n")
    np.save(directory / ExportFile.IMAGE_STATS, rng.random((n, 3)).astype(np.float32))
    np.save(directory / ExportFile.IMAGE_STATS_BLANK, np.zeros(3, dtype=np.float32))
    np.save(directory / ExportFile.MINILM, rng.random((n, 4)).astype(np.float32))
    np.save(directory / ExportFile.MINILM_EMPTY, np.full(4, -1.0, dtype=np.float32))
    manifest = {
        "schema": EXPORT_SCHEMA,
        "key": f"key-{seed}",
        "cases": n,
        "cohort": {"name": "handmade", "bayes_auroc": None},
        "labelled_per_split": {s: int((splits == s).sum()) for s in ("train", "val", "test")},
        "image": {"dims": 2, "shape": [8, 8]},
        "tabular": {"continuous": ["crp", "age"], "categories": ["sex=F", "sex=M"]},
        "image_stats": ["a", "b", "c"],
        "text_max_length": 32,
        "train": {"epochs": 2, "patience": 1},
    }
    (directory / ExportFile.MANIFEST).write_text(json.dumps(manifest))
    return PeerExport(directory)


TFIDF = next(p for p in PEERS if p.key == "tfidf_text")


def test_registry_keys_are_unique_and_resolvable():
    keys = [p.key for p in OTHERS]
    assert len(keys) == len(set(keys))
    assert all(peer_by_key(k).key == k for k in keys)
    assert {p.group for p in OTHERS} <= {PEER, SINGLE}
    with pytest.raises(SystemExit, match="unknown peer"):
        peer_by_key("nope")


@pytest.mark.slow  # two adapter processes (scikit-learn): a few seconds each
def test_peer_runs_measures_and_is_resumed(tmp_path):
    export = write_export(tmp_path / "export")
    out = tmp_path / "out"
    record = peer_record(TFIDF, 0, export, out, epochs=2, patience=1, threads=1)
    assert record["status"] == "ok", record.get("reason")
    assert record["test_auroc"] > 0.75
    assert record["removed"] == {"image": None, "tabular": None, "text": 0.5}
    assert record["threads"] == 1 and record["export_key"] == "key-0"
    assert 0 < record["peak_mib"] < 1000 and record["train_seconds"] >= 0
    predictions = pd.read_csv(record["predictions"], dtype={"case_id": str})
    assert predictions["case_id"].tolist() == [export.case_ids[i] for i in export.index("test")]
    log = out / "records" / TFIDF.key / "seed0" / "adapter.log"
    stamp = log.stat().st_mtime_ns
    assert peer_record(TFIDF, 0, export, out, epochs=2, patience=1, threads=1) == record
    assert log.stat().st_mtime_ns == stamp  # reused, not run again
    rerun = peer_record(TFIDF, 0, export, out, epochs=2, patience=1, threads=2)
    assert rerun["threads"] == 2 and log.stat().st_mtime_ns != stamp


def write_extra_export(directory: Path, like: PeerExport, n: int = 60) -> PeerExport:
    """A further test cohort exported like ``like``: every case in the test split."""
    write_export(directory, n=n, seed=1)
    cases = pd.read_csv(directory / ExportFile.CASES)
    cases["split"] = "test"
    cases.to_csv(directory / ExportFile.CASES, index=False)
    manifest = json.loads((directory / ExportFile.MANIFEST).read_text())
    manifest["like"] = {"directory": str(like.directory), "key": like.manifest["key"]}
    (directory / ExportFile.MANIFEST).write_text(json.dumps(manifest))
    return PeerExport(directory)


@pytest.mark.slow  # adapter processes (scikit-learn): a few seconds each
def test_peers_that_can_score_every_case_of_further_test_cohorts(tmp_path):
    export = write_export(tmp_path / "export")
    extra = write_extra_export(tmp_path / "extra_cohort", export)
    out = tmp_path / "out"
    record = peer_record(TFIDF, 0, export, out, 2, 1, 1, extras=[extra])
    assert record["status"] == "ok", record.get("reason")
    scored = pd.read_csv(record["extra_predictions"]["extra_cohort"], dtype={"case_id": str})
    assert scored["case_id"].tolist() == extra.case_ids  # every case, in export order
    np.testing.assert_array_equal(scored["label"], extra.labels)
    assert auroc(scored["label"].to_numpy(), scored["probability"].to_numpy()) > 0.75
    assert scored["probability_without_text"].nunique() == 1  # the empty note for everyone
    # the cohort's own test split is scored as before
    own = pd.read_csv(record["predictions"], dtype={"case_id": str})
    assert own["case_id"].tolist() == [export.case_ids[i] for i in export.index("test")]
    # the record is reused with the same further cohorts, redone without them
    log = out / "records" / TFIDF.key / "seed0" / "adapter.log"
    stamp = log.stat().st_mtime_ns
    assert peer_record(TFIDF, 0, export, out, 2, 1, 1, extras=[extra]) == record
    assert log.stat().st_mtime_ns == stamp
    alone = peer_record(TFIDF, 0, export, out, 2, 1, 1)
    assert alone["extra_predictions"] == {} and not list(log.parent.glob("predictions_*.csv"))
    # a cohort not exported like the training export is refused, naming the fix
    stranger = write_export(tmp_path / "stranger", seed=2)
    failed = peer_record(TFIDF, 1, export, out, 2, 1, 1, extras=[stranger])
    assert failed["status"] == "failed" and "--like" in failed["reason"]


def test_only_adapters_that_take_further_test_cohorts_are_given_them(tmp_path):
    export = write_export(tmp_path / "export")
    extra = write_extra_export(tmp_path / "extra", export)
    assert {p.key for p in PEERS if p.scores_extra} == {"haim", "gbm_tabular", "tfidf_text"}
    for spec in PEERS:
        assert extra_exports_for(spec, [extra]) == ([extra] if spec.scores_extra else [])


def test_a_failing_or_missing_peer_is_reported_with_its_reason(tmp_path):
    export = write_export(tmp_path / "export")
    broken = PeerSpec("broken", "broken peer", PEER, MAIN_ENV, "benchmarks.peers.adapters.no_such_adapter")
    failed = peer_record(broken, 0, export, tmp_path / "out", 2, 1, 1)
    assert (
        failed["status"] == "failed"
        and "exit 1" in failed["reason"]
        and "no_such_adapter" in failed["reason"]
    )
    missing = PeerSpec("absent", "absent peer", PEER, "no-such-env", "benchmarks.peers.adapters.gbm")
    assert "setup.sh" in peer_record(missing, 0, export, tmp_path / "out", 2, 1, 1)["reason"]


def test_run_measured_reports_the_command_not_the_harness(tmp_path):
    log = tmp_path / "log.txt"
    small = run_measured([sys.executable, "-S", "-c", "print('hi')"], log)
    assert small["rc"] == 0 and "hi" in log.read_text()
    # this test process has torch loaded (hundreds of MiB); a bare interpreter must not inherit that peak
    assert small["peak_mib"] < 60
    big = run_measured(
        [sys.executable, "-S", "-c", "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096])"], log
    )
    assert big["peak_mib"] > 150
    assert run_measured([sys.executable, "-S", "-c", "raise SystemExit(3)"], log)["rc"] == 3


def test_gbm_features_make_the_removed_modality_missing(tmp_path):
    export = write_export(tmp_path / "export")
    full = design(export, "haim")
    assert full.shape == (80, 4 + 3 + 4)
    no_image = design(export, "haim", PeerModality.IMAGE)
    np.testing.assert_array_equal(no_image[:, 4:7], 0.0)
    np.testing.assert_array_equal(no_image[:, 7:], full[:, 7:])
    no_text = design(export, "haim", PeerModality.TEXT)
    np.testing.assert_array_equal(no_text[:, 7:], -1.0)
    no_tabular = design(export, "haim", PeerModality.TABULAR)
    assert np.isnan(no_tabular[:, :2]).all() and (no_tabular[:, 2:4] == 0).all()
    assert design(export, "tabular").shape == (80, 4)


def test_widedeep_tabular_frame_decodes_categories(tmp_path):
    from benchmarks.peers.adapters.widedeep import tabular_frame

    export = write_export(tmp_path / "export")
    fitted = TabularDesign(export.continuous_columns).fit(export.tabular().iloc[export.index("train")])
    frame = tabular_frame(export, fitted)
    assert list(frame.columns) == ["crp", "age", "crp__missing", "age__missing", "sex"]
    assert set(frame["sex"]) <= {"F", "M"}
    blank = tabular_frame(export, fitted, blank=True)
    assert (blank["sex"] == "missing").all() and (blank["crp__missing"] == 1).all()


@pytest.mark.parametrize(("size", "blocks"), [(32, 3), (94, 5), (93, 4), (16, 2), (4, 1), (3, 0), (512, 5)])
def test_fusilli_keeps_the_conv_blocks_an_image_survives(size, blocks):
    assert blocks_that_fit(size) == blocks


def test_choose_ablation_uses_mean_validation_auroc():
    records = [
        {"key": "mmdx_concat", "status": "ok", "val_auroc": 0.80},
        {"key": "mmdx_concat", "status": "ok", "val_auroc": 0.90},
        {"key": "mmdx_late", "status": "ok", "val_auroc": 0.86},
        {"key": "mmdx_gated_attention", "status": "ok", "val_auroc": 0.99},  # not an ablation
        {"key": "mmdx_gated", "status": "failed", "val_auroc": None},
    ]
    assert choose_ablation(records) == "mmdx_late"
    assert choose_ablation(records[3:]) is None


def test_report_names_the_best_peer_and_its_interval(tmp_path):
    export = write_export(tmp_path / "export", n=400)
    test = export.index("test")
    y = export.labels[test]
    ids = [export.case_ids[i] for i in test]
    rng = np.random.default_rng(1)
    records = []
    models = (
        ("mmdx_gated_attention", MMDX, 3.0),
        ("tfidf_text", SINGLE, 2.0),
        ("haim", PEER, 1.0),
        ("mmdx_late", MMDX, 0.5),
    )
    for key, group, strength in models:
        for seed in (0, 1):
            path = tmp_path / f"{key}-{seed}.csv"
            p = 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(size=y.size))))
            pd.DataFrame({"case_id": ids, "label": y, "probability": p}).to_csv(path, index=False)
            records.append(
                {
                    "model": key,
                    "key": key,
                    "group": group,
                    "seed": seed,
                    "status": "ok",
                    "test_auroc": float(np.mean(p[y == 1][:, None] > p[y == 0][None, :])),
                    "removed": {"image": 0.6, "tabular": 0.6, "text": 0.6},
                    "val_auroc": 0.7,
                    "inputs": {"image": "img"},
                    "predictions": str(path),
                }
            )
    section, summary = build_report(records, export, "cmd --x", 500, [0, 1])
    assert "Reproduce: `cmd --x`" in section
    assert summary["best_peer"] == "tfidf_text" and summary["best_multimodal_peer"] == "haim"
    assert summary["chosen_ablation"] == "mmdx_late"
    assert "mmdx_gated_attention − tfidf_text** (best peer or baseline" in section
    assert "mmdx_gated_attention − haim** (best multimodal peer" in section
    differences = {(d["model"], d["against"]): d for d in summary["differences"]}
    assert set(differences) == {
        (mmdx, other) for mmdx in ("mmdx_gated_attention", "mmdx_late") for other in ("tfidf_text", "haim")
    }
    assert differences[("mmdx_gated_attention", "haim")]["estimate"] > 0
    assert differences[("mmdx_late", "tfidf_text")]["estimate"] < 0
    assert section.count("| mmdx_late |") == 1
    assert "95% CI [" in section and "Targets:" in section


def test_schedule_goes_seed_by_seed_and_limits_slow_peers_to_the_first_seed():
    fast, slow = SimpleNamespace(key="fast"), SimpleNamespace(key="slow")
    pairs = [(spec.key, seed) for spec, seed in schedule([fast, slow], [3, 4, 5], ["slow"])]
    assert pairs == [("fast", 3), ("slow", 3), ("fast", 4), ("fast", 5)]
    assert len(schedule([fast, slow], [0, 1], [])) == 4
