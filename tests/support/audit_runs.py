"""A small trained, evaluated and explained run, a review store with verdicts on it, a second run to compare
with, and the audit report of all three: built once per test session."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from mmdx.audit.clinician_review import ReviewAccess
from mmdx.audit.report import AuditFiles, AuditOptions, build_report, write_report
from mmdx.store import Operator, ReviewStore, Role, Verdict
from mmdx.store.passwords import MIN_BCRYPT_ROUNDS

PASSWORD = "an auditor's password"
RUN_NAME = "audit-run"
#: small enough for a quick session, large enough that some subgroups are compared and some are flagged
OPTIONS = AuditOptions(
    n_resamples=200,
    seed=3,
    min_group_size=8,
    min_group_events=2,
    min_review_group_size=3,
    noise_levels=(0.1, 0.3),
    missingness_levels=(0.5, 1.0),
    threads=1,
)


@pytest.fixture(scope="session")
def audit_run(small_cohort_2d: Path, tmp_path_factory: pytest.TempPathFactory, tiny) -> Path:
    """The demo architecture shrunk (conftest TINY), 3 epochs on the 160-case 2D cohort, evaluated, its
    first 10 test cases explained, and evaluated on a second synthetic site (``external/site-b``)."""
    from mmdx.data.synth import SynthOptions, synthesize_cohort
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.explain import explain_run
    from mmdx.workflows.external import evaluate_external
    from mmdx.workflows.train import train_run

    _, make_config = tiny
    out = tmp_path_factory.mktemp("audit") / RUN_NAME
    train_run(make_config("train.epochs=3"), small_cohort_2d, out, progress=False)
    evaluate_run(out, workers=1)
    explain_run(out, limit=10, check_cases=4, workers=1, image_method="auto", choice_cases=4)
    site = tmp_path_factory.mktemp("audit-site") / "site-b"
    synthesize_cohort(site, SynthOptions(n_cases=80, seed=12, dims=2, size=32, site_shift=True))
    evaluate_external(out, site, "site-b", local_sample=30, method="intercept", n_resamples=50, workers=1)
    return out


@dataclass(frozen=True)
class ReviewFixture:
    """The store and what was put in it: ``latest`` holds each reviewer's current verdict per case."""

    url: str
    model_version: str
    latest: dict[tuple[str, str], Verdict]
    other_version_verdicts: int
    comments: dict[tuple[str, str], str]


@pytest.fixture(scope="session")
def review_store(audit_run: Path, tmp_path_factory: pytest.TempPathFactory) -> ReviewFixture:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'review.sqlite'}"
    card = json.loads((audit_run / "bundle" / "card.json").read_text())
    version = card["model_version"]
    frame = pd.read_parquet(audit_run / "predictions.parquet")
    test = frame.loc[frame["split"] == "test", "case_id"].tolist()
    latest: dict[tuple[str, str], Verdict] = {}
    comments: dict[tuple[str, str], str] = {}
    with ReviewStore(url, bcrypt_rounds=MIN_BCRYPT_ROUNDS) as store:
        operator = Operator("tests")
        for name, role in (("clin.a", Role.CLINICIAN), ("clin.b", Role.CLINICIAN), ("aud", Role.AUDITOR)):
            store.add_user(name, role, PASSWORD, actor=operator)
        a = store.authenticate("clin.a", PASSWORD)
        b = store.authenticate("clin.b", PASSWORD)

        def submit(principal, case_id, verdict, comment="", model_version=version):
            store.submit_verdict(
                principal, RUN_NAME, case_id, verdict, "", 3, comment, ["image"], model_version, "e1"
            )
            if model_version == version:
                latest[(principal.name, case_id)] = verdict
                if comment:
                    comments[(principal.name, case_id)] = comment

        submit(a, test[0], Verdict.DISAGREE)  # superseded below: only the latest verdict counts
        for i, case_id in enumerate(test[:10]):
            submit(a, case_id, [Verdict.AGREE, Verdict.AGREE, Verdict.DISAGREE, Verdict.UNSURE][i % 4])
        submit(a, test[4], Verdict.DISAGREE, "Discussed with Mr Jonathan Brown, 07700 900123; lesion missed")
        for case_id in test[:4]:
            submit(b, case_id, Verdict.AGREE)
        submit(b, test[12], Verdict.AGREE, model_version="0" * 16)  # a verdict on another model
    return ReviewFixture(url, version, latest, 1, comments)


@pytest.fixture(scope="session")
def compare_run(audit_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second run on the same cohort: the same bundle with noisier predictions."""
    other = tmp_path_factory.mktemp("audit-b") / f"{RUN_NAME}-b"
    shutil.copytree(audit_run, other, ignore=shutil.ignore_patterns("checkpoints", "audit", "explanations"))
    frame = pd.read_parquet(other / "predictions.parquet")
    rng = np.random.default_rng(17)
    frame["probability"] = expit(frame["logit"] * 5.0 + rng.normal(scale=1.0, size=len(frame)))
    frame.to_parquet(other / "predictions.parquet", index=False)
    return other


@dataclass
class BuiltReport:
    document: dict
    files: AuditFiles
    run: Path
    compare: Path
    review: ReviewFixture


@pytest.fixture(scope="session")
def audit_report(
    audit_run: Path, review_store: ReviewFixture, compare_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltReport]:
    store = ReviewStore(review_store.url)
    try:
        principal = store.authenticate("aud", PASSWORD)
        document = build_report(
            audit_run, options=OPTIONS, review=ReviewAccess(store, principal), compare=compare_run
        )
    finally:
        store.close()
    files = write_report(document, tmp_path_factory.mktemp("audit-out"))
    yield BuiltReport(document, files, audit_run, compare_run, review_store)
