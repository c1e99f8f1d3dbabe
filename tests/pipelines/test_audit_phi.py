"""No PHI in the audit report: a run trained on a de-identified copy of an identified (``--phi``) cohort,
reviewed by a clinician who typed identifiers into a comment, is audited; no canary reaches the report."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.deid.canary import CanaryScanner, find_canaries, load_canaries
from mmdx.deid.cohort import DeidOptions, deidentify_cohort
from mmdx.deid.key import DeidKey
from mmdx.store import Operator, ReviewStore, Role, Verdict
from mmdx.store.passwords import MIN_BCRYPT_ROUNDS
from pipelines.cli import main

pytestmark = pytest.mark.slow

PASSWORD = "an auditor's password"


def _by_kind(canaries: list[dict], kind: str) -> str:
    return next(c["value"] for c in canaries if c["kind"] == kind)


def test_the_audit_of_a_deidentified_run_holds_no_canary(
    tmp_path_factory: pytest.TempPathFactory, tiny, monkeypatch
) -> None:
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.explain import explain_run
    from mmdx.workflows.train import train_run

    base = tmp_path_factory.mktemp("phi-audit")
    identified, deid, run = base / "identified", base / "deid", base / "run"
    synthesize_cohort(identified, SynthOptions(n_cases=160, seed=4, dims=2, size=32, phi=True, workers=2))
    deidentify_cohort(identified, deid, DeidKey(bytes(range(32))), DeidOptions(workers=2))
    _, make_config = tiny
    train_run(make_config("train.epochs=1"), deid, run, progress=False)
    evaluate_run(run, workers=1)
    explain_run(run, limit=5, check_cases=3, workers=1)

    canaries = load_canaries(identified)
    typed = (
        f"Called Mr {_by_kind(canaries, 'family')} on {_by_kind(canaries, 'phone')} and wrote to "
        f"{_by_kind(canaries, 'email')}; MRN {_by_kind(canaries, 'mrn')}, born {_by_kind(canaries, 'birth_date')}"
    )
    card = json.loads((run / "bundle" / "card.json").read_text())
    case_id = pd.read_parquet(run / "predictions.parquet").query("split == 'test'")["case_id"].iloc[0]
    url = f"sqlite:///{run / 'review.sqlite'}"
    with ReviewStore(url, bcrypt_rounds=MIN_BCRYPT_ROUNDS) as store:
        store.add_user("clin", Role.CLINICIAN, PASSWORD, actor=Operator("tests"))
        store.add_user("aud", Role.AUDITOR, PASSWORD, actor=Operator("tests"))
        clinician = store.authenticate("clin", PASSWORD)
        store.submit_verdict(
            clinician, "run", case_id, Verdict.DISAGREE, "", 4, typed, [], card["model_version"], "e1"
        )

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(
            ["audit", str(run), "--user", "aud", "--password-stdin", "--bootstrap", "50", "--threads", "1"]
        )
    assert code == 0, printed.getvalue()
    out = run / "audit"
    document = json.loads((out / "audit_report.json").read_text())
    review = document["sections"]["clinician_review"]
    assert review["status"] == "ok" and review["comments"][0]["case_id"] == case_id
    assert review["comments_scrubbed_spans"] >= 5

    assert find_canaries([out], canaries) == []
    assert CanaryScanner(canaries).scan_bytes(printed.getvalue().encode()) == []
    # the scan is not blind: the store the report was made from holds the typed identifiers
    assert find_canaries(sorted(run.glob("review.sqlite*")), canaries)
