"""Every page under AppTest, for the roles that may see it and for those that may not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clinical_ui.settings import RUN_ENV
from clinical_ui.state import SESSION
from mmdx.bundle import load_bundle
from mmdx.review.formatting import plain
from mmdx.run import RunPaths
from mmdx.store import Verdict
from tests.support.review_runs import plant_external_evaluation

VIEWS = Path(__file__).resolve().parents[2] / "clinical_ui" / "views"


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("clin", set()),
        ("aud", {"views/audit_trail.py"}),
        ("adm", {"views/audit_trail.py", "views/users.py"}),
    ],
)
def test_governance_pages_are_offered_by_role(dashboard, name: str, allowed: set[str]) -> None:
    app = dashboard().sign_in(name)
    for page in ("views/audit_trail.py", "views/users.py"):
        if page in allowed:
            app.go(page)
            assert not app.at.error
        else:
            with pytest.raises(ValueError, match="navigation page"):
                app.at.switch_page(page)


@pytest.mark.parametrize(
    ("page", "what"), [("users.py", "list users"), ("audit_trail.py", "read the audit trail")]
)
def test_a_clinician_reaching_a_governance_page_is_refused_by_the_store(
    dashboard, session_of, page: str, what: str
) -> None:
    """Even a page file run directly (not through the navigation) reads nothing: the store refuses."""
    app = dashboard(VIEWS / page)
    app.at.session_state[SESSION] = session_of("clin")
    app.run_app()
    assert any(what in e.value and "Not allowed" in e.value for e in app.at.error)
    assert not app.at.dataframe
    assert app.events("permission_denied")


def test_pages_need_a_session(dashboard) -> None:
    for page in (
        "worklist.py",
        "case_review.py",
        "reviews.py",
        "evaluation.py",
        "audit_trail.py",
        "users.py",
    ):
        app = dashboard(VIEWS / page).run_app()
        assert [w.value for w in app.at.warning] == ["Please sign in."]
        assert not app.at.dataframe


def test_worklist_sorts_and_filters(dashboard, case_ids) -> None:
    app = dashboard().sign_in("clin")
    frame = app.at.dataframe[0].value
    # by default: test and unlabelled cases, explained first, highest risk first within each part
    assert set(frame["group"]) <= {"test", "unlabelled"} and len(frame) < len(case_ids)
    assert frame["explained"].is_monotonic_decreasing
    for _, part in frame.groupby("explained"):
        assert (part["probability"].diff().dropna() <= 0).all()
    app.widget("checkbox", "Explained cases first").uncheck()
    app.widget("multiselect", "Cases").select("train").select("val")
    app.run_app()
    frame = app.at.dataframe[0].value
    assert "train" in set(frame["group"]) and (frame["probability"].diff().dropna() <= 0).all()
    app.widget("selectbox", "Order").select("most_uncertain")
    app.run_app()
    frame = app.at.dataframe[0].value
    assert (frame["uncertainty"].diff().dropna() <= 0).all()
    app.widget("multiselect", "Prediction").select("positive")
    app.run_app()
    assert set(app.at.dataframe[0].value["predicted"]) <= {"positive"}
    app.widget("text_input", "Case id contains").input("no such case")
    app.run_app()
    assert not app.at.dataframe and "No case matches" in app.at.info[0].value


def test_reviews_page_mine_and_everyone(dashboard, store, case_ids) -> None:
    clin = store.authenticate("clin", "correct horse battery")
    colleague = store.authenticate("colleague", "correct horse battery")
    store.submit_verdict(clin, "run", case_ids[0], Verdict.AGREE, "", 3, "", [], "m", "e")
    store.submit_verdict(colleague, "run", case_ids[1], Verdict.DISAGREE, "", 3, "", [], "m", "e")
    mine = dashboard().sign_in("clin").go("views/reviews.py")
    assert mine.at.title[0].value == "My reviews"
    assert mine.at.dataframe[0].value["case"].tolist() == [case_ids[0]]
    assert not mine.has("button", "Prepare the verdicts of this run as CSV")
    everyone = dashboard().sign_in("aud").go("views/reviews.py")
    assert everyone.at.title[0].value == "All reviews"
    assert sorted(everyone.at.dataframe[0].value["user"]) == ["clin", "colleague"]
    everyone.widget("button", "Prepare the verdicts of this run as CSV").click()
    everyone.run_app()
    assert everyone.at.get("download_button")
    assert [e.user for e in everyone.events("export")] == ["aud"]


def test_audit_page_shows_events_and_records_the_export(dashboard, case_ids) -> None:
    dashboard().sign_in("clin").open_case(case_ids[0])
    app = dashboard().sign_in("aud").go("views/audit_trail.py")
    events = app.at.dataframe[0].value
    opened = events[events["action"] == "open_case"]
    assert opened[["user", "case"]].values.tolist() == [["clin", case_ids[0]]]
    views = len(app.events("view_audit"))
    app.run_app()  # a rerun with the same filters does not read (and record) the trail again
    assert len(app.events("view_audit")) == views + 1  # only the count check above read it
    assert not app.events("export")
    app.widget("button", "Prepare CSV export").click()
    app.run_app()
    (button,) = app.at.get("download_button")
    assert "events (CSV)" in button.proto.label
    assert [e.user for e in app.events("export")] == ["aud"]


def test_admin_adds_and_deactivates_accounts(dashboard, store) -> None:
    app = dashboard().sign_in("adm").go("views/users.py")
    assert sorted(app.at.dataframe[0].value["name"]) == ["adm", "aud", "clin", "colleague"]
    app.widget("text_input", "User name").input("new.doctor")
    app.widget("selectbox", "Role").select("clinician")
    app.widget("text_input", "Initial password").input("a long enough password")
    app.widget("button", "Add account").click()
    app.run_app()
    assert "new.doctor" in app.at.dataframe[0].value["name"].tolist()
    assert store.authenticate("new.doctor", "a long enough password") is not None
    app.widget("selectbox", "Account").select("new.doctor")
    app.run_app()
    app.widget("button", "Deactivate 'new\\.doctor'").click()  # the name is escaped for markdown
    app.run_app()
    assert store.authenticate("new.doctor", "a long enough password") is None


def test_evaluation_page_selects_the_runs_own_or_an_external_evaluation(
    dashboard, review_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run-with-site"
    shutil.copytree(review_run.path, run, ignore=shutil.ignore_patterns("checkpoints", "review.sqlite*"))
    version = load_bundle(run / "bundle").version
    planted = plant_external_evaluation(run, "harbour", version)
    monkeypatch.setenv(RUN_ENV, str(run))
    app = dashboard().sign_in("clin").go("views/evaluation.py")
    choice = app.widget("selectbox", "Evaluation")
    assert choice.options == [
        "this run's own evaluation (its held-out test split)",
        "external site: harbour",
    ]
    own = RunPaths(run).read_metrics()["splits"]["test"]
    assert f"{own['n']} scored cases" in app.texts()
    assert "Local recalibration" not in app.texts()

    choice.set_value("harbour")
    app.run_app()
    texts = app.texts()
    scored = planted["predictions"][planted["predictions"]["split"] == "test"]
    assert f"{len(scored)} scored cases" in texts and "external site harbour" in texts
    metrics = app.at.dataframe[0].value.set_index("metric")
    assert tuple(metrics.loc["AUROC", ["estimate", "low", "high"]]) == (0.81, 0.74, 0.88)
    assert "Local recalibration" in texts and "chose intercept" in texts
    assert f"- {plain(planted['drift']['flags'][0])}" in texts  # shown as markdown, escaped
    # the choice stays when the page is shown again
    app.go("views/worklist.py").go("views/evaluation.py")
    assert app.widget("selectbox", "Evaluation").value == "harbour"
