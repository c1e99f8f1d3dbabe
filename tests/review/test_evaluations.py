"""The evaluations the dashboard can show: the run's own and an external one, against their files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdx.errors import MmdxError
from mmdx.review import open_review_context
from mmdx.review.evaluations import OWN_EVALUATION, evaluation_choices, evaluation_summary
from mmdx.run import RunPaths
from mmdx.store import PermissionDenied
from tests.review.conftest import Accounts
from tests.support.review_runs import plant_external_evaluation


def test_the_runs_own_evaluation_is_read_from_its_metrics_and_predictions(
    run_copy: Path, accounts: Accounts
) -> None:
    context = open_review_context(run_copy, accounts.store)
    assert evaluation_choices(context) == {
        OWN_EVALUATION: "this run's own evaluation (its held-out test split)"
    }
    summary = evaluation_summary(context, accounts.clinician, OWN_EVALUATION)
    run = RunPaths(run_copy)
    test = run.read_metrics()["splits"]["test"]
    frame = run.read_predictions()
    scored = frame[frame["split"] == "test"]
    assert (summary.n_cases, summary.n_positive) == (test["n"], test["n_positive"])
    auroc = summary.metrics.set_index("metric").loc["AUROC"]
    assert auroc["estimate"] == pytest.approx(test["auroc"])
    citl = summary.metrics.set_index("metric").loc["mean predicted − observed", "estimate"]
    assert citl == pytest.approx(scored["probability"].mean() - scored["label"].mean())
    row = summary.cases.iloc[0]
    assert row["n"] == len(scored) and row["mean predicted"] == pytest.approx(scored["probability"].mean())
    assert summary.recalibration is None and not summary.drift_flags


def test_an_external_evaluation_shows_its_own_numbers(run_copy: Path, accounts: Accounts) -> None:
    context = open_review_context(run_copy, accounts.store)
    planted = plant_external_evaluation(run_copy, "harbour", context.model_version)
    assert list(evaluation_choices(context)) == [OWN_EVALUATION, "harbour"]
    summary = evaluation_summary(context, accounts.auditor, "harbour")
    frame = planted["predictions"]
    scored, local = frame[frame["split"] == "test"], frame[frame["split"] == "val"]
    assert summary.folder == run_copy / "external" / "harbour"
    assert (summary.n_cases, summary.n_positive) == (len(scored), int(scored["label"].sum()))
    auroc = summary.metrics.set_index("metric").loc["AUROC"]
    assert (auroc["estimate"], auroc["low"], auroc["high"]) == (0.81, 0.74, 0.88)
    roles = summary.cases.set_index("cases")
    assert roles.loc["scored", "n"] == len(scored)
    assert roles.loc["scored", "mean predicted"] == pytest.approx(scored["probability"].mean())
    assert roles.loc["scored", "observed rate"] == pytest.approx(scored["label"].mean())
    assert roles.loc["local labelled sample (recalibration)", "n"] == len(local)
    assert summary.bayes_auroc == 0.9 and summary.drift_flags == planted["drift"]["flags"]
    # one row per recalibration that was scored; the recommended one marked; the closed test's choice named
    table = summary.recalibration.set_index("recalibration")
    assert len(table) == 3 and summary.recommended == "closed_test" and summary.selected == "intercept"
    assert table["recommended"].sum() == 1
    assert table.loc["closed testing procedure (chose recalibration-in-the-large)", "recommended"]
    # the run's own evaluation is still there and different
    assert evaluation_summary(context, accounts.auditor, OWN_EVALUATION).n_cases != summary.n_cases


def test_missing_or_foreign_evaluations_and_strangers_are_refused(run_copy: Path, accounts: Accounts) -> None:
    context = open_review_context(run_copy, accounts.store)
    with pytest.raises(MmdxError, match="no external evaluation 'elsewhere'.*--name elsewhere"):
        evaluation_summary(context, accounts.clinician, "elsewhere")
    plant_external_evaluation(run_copy, "harbour", "another-model")
    with pytest.raises(MmdxError, match="made by model another-model.*evaluate the site again"):
        evaluation_summary(context, accounts.clinician, "harbour")
    with pytest.raises(PermissionDenied):
        evaluation_summary(context, "not a principal", OWN_EVALUATION)
