"""No PHI downstream: an identified cohort, de-identified, validated, trained on and evaluated, leaves no
canary in any byte written (output cohort, run directory, image cache, logs); and a bundle file replaced by a
crafted pickle is refused without its payload ever running."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from mmdx.bundle import MANIFEST, WEIGHTS, load_bundle, sha256_file
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.validation import validate_cohort
from mmdx.deid.canary import CanaryScanner, find_canaries, load_canaries
from mmdx.errors import BundleError
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthesise an identified 2D cohort, de-identify, train and evaluate it through the command line,
    capturing every log record and everything printed."""
    base = tmp_path_factory.mktemp("phi-pipeline")
    identified, deid, run = base / "identified", base / "deid", base / "run"
    synthesize_cohort(identified, SynthOptions(n_cases=160, seed=4, dims=2, size=32, phi=True, workers=2))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            codes = _run_commands(identified, deid, run, base)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    return {
        "identified": identified,
        "deid": deid,
        "run": run,
        "codes": codes,
        "captured": stream.getvalue() + out.getvalue() + err.getvalue(),
    }


def _run_commands(identified: Path, deid: Path, run: Path, base: Path) -> list[int]:
    return [
        main(["deid", str(identified), str(deid), "--key-file", str(base / "secret.key")]),
        main(["validate", str(deid)]),
        main(
            [
                "train",
                "--config",
                str(ROOT / "configs" / "demo.yaml"),
                "--cohort",
                str(deid),
                "--out",
                str(run),
                "--set",
                "train.epochs=1",
                "--set",
                "data.loader.batch_size=16",
            ]
        ),
        main(["evaluate", str(run)]),
    ]


@pytest.mark.slow
def test_full_pipeline_on_a_deidentified_cohort_leaks_no_canary(pipeline: dict) -> None:
    assert pipeline["codes"] == [0, 0, 0, 0]
    canaries = load_canaries(pipeline["identified"])
    assert validate_cohort(pipeline["deid"]).report.usable
    assert (pipeline["run"] / "predictions.parquet").is_file() and (
        pipeline["run"] / "metrics.json"
    ).is_file()
    cache = Path(os.environ["MMDX_CACHE_DIR"])
    hits = find_canaries([pipeline["deid"], pipeline["run"], cache], canaries)
    assert hits == [], hits[:10]
    scanner = CanaryScanner(canaries)
    captured = pipeline["captured"]
    assert "de-identified" in captured and "trained demo" in captured  # the commands' output was captured
    assert scanner.scan_bytes(captured.encode()) == []
    # the scan is not blind: the identified cohort is full of canaries
    assert len(find_canaries([pipeline["identified"] / "notes.jsonl"], canaries)) > 100


@pytest.mark.slow
def test_predictions_use_pseudonymous_case_ids(pipeline: dict) -> None:
    import pandas as pd

    predictions = pd.read_parquet(pipeline["run"] / "predictions.parquet")
    assert predictions["case_id"].str.fullmatch(r"C-[0-9a-f]{10}").all()


def _sentinel_pickle(sentinel: Path) -> bytes:
    """A protocol-0 pickle whose loading calls ``open(sentinel, "w")``: a harmless stand-in for any code."""
    return b"cbuiltins\nopen\n(V" + str(sentinel).encode() + b"\nVw\ntR."


@pytest.mark.slow
@pytest.mark.parametrize("update_manifest", [False, True])
def test_a_crafted_pickle_as_bundle_weights_is_refused_and_never_runs(
    pipeline: dict, tmp_path: Path, update_manifest: bool
) -> None:
    # positive control: the payload really does run when a pickle loader reads it
    control = tmp_path / "control-sentinel"
    importlib.import_module("pickle").loads(_sentinel_pickle(control))
    assert control.exists()

    bundle = tmp_path / "bundle"
    shutil.copytree(pipeline["run"] / "bundle", bundle)
    sentinel = tmp_path / "sentinel"
    (bundle / WEIGHTS).write_bytes(_sentinel_pickle(sentinel))
    if (
        update_manifest
    ):  # an attacker who also rewrites the checksum still meets a parser that cannot unpickle
        manifest = json.loads((bundle / MANIFEST).read_text())
        manifest["files"][WEIGHTS] = sha256_file(bundle / WEIGHTS)
        (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as error:
        load_bundle(bundle)
    message = str(error.value)
    if update_manifest:
        assert f"{WEIGHTS} cannot be used" in message
    else:
        assert "does not match its checksum" in message and WEIGHTS in message
    assert not sentinel.exists()
