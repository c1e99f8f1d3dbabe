"""Sign-in, sign-out and idle timeout: nothing about any patient before sign-in or after the session ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clinical_ui.state import SESSION


def _no_case_data(text: str, case_ids: list[str]) -> None:
    leaked = [c for c in case_ids if c in text]
    assert not leaked, f"case ids shown while signed out: {leaked[:5]}"
    assert "probability" not in text.lower() and "Worklist" not in text


def test_signed_out_shows_only_the_sign_in_form(dashboard, case_ids) -> None:
    app = dashboard().run_app()
    assert [t.value for t in app.at.title] == ["mmdx review"]
    assert app.has("text_input", "User name") and app.has("text_input", "Password")
    assert not app.at.dataframe and not app.at.image
    _no_case_data(app.texts(), case_ids)
    for page in ("views/worklist.py", "views/case_review.py", "views/audit_trail.py"):
        with pytest.raises(ValueError, match="navigation page"):
            app.at.switch_page(page)


def test_wrong_password_reveals_nothing(dashboard, case_ids) -> None:
    app = dashboard().sign_in("clin", "not the password")
    assert "Sign-in failed" in app.at.error[0].value
    unknown = dashboard().sign_in("nobody", "not the password")
    assert unknown.at.error[0].value == app.at.error[0].value  # same words: no hint which names exist
    assert SESSION not in app.at.session_state
    _no_case_data(app.texts(), case_ids)
    assert len(app.events("sign_in_failed")) == 2


def test_sign_in_opens_the_worklist_and_sign_out_forgets_everything(dashboard, case_ids) -> None:
    app = dashboard().sign_in("clin")
    assert app.at.title[0].value == "Worklist"
    shown = set(app.at.dataframe[0].value["case_id"])
    assert shown and shown <= set(case_ids)  # the cases to review (test split, unlabelled)
    app.at.button(key="sign_out").click()
    app.run_app()
    assert app.at.title[0].value == "mmdx review" and "signed out" in app.at.info[0].value
    assert SESSION not in app.at.session_state and "mmdx_case_order" not in app.at.session_state
    _no_case_data(app.texts(), case_ids)
    assert [e.user for e in app.events("sign_out")] == ["clin"]


def test_an_idle_session_times_out_and_is_recorded(dashboard, case_ids) -> None:
    app = dashboard().sign_in("clin")
    session = app.at.session_state[SESSION]
    session.clock.last_activity -= timedelta(minutes=16)
    app.run_app()
    assert app.at.title[0].value == "mmdx review"
    assert "without activity" in app.at.info[0].value
    _no_case_data(app.texts(), case_ids)
    (event,) = app.events("session_timeout")
    assert event.user == "clin" and event.detail["idle_timeout_s"] == 900


def test_activity_keeps_the_session_alive(dashboard) -> None:
    app = dashboard().sign_in("clin")
    session = app.at.session_state[SESSION]
    session.clock.last_activity -= timedelta(minutes=14)
    app.run_app()  # any interaction is activity
    assert app.at.title[0].value == "Worklist"
    assert session.clock.remaining_s() > 14 * 60
    assert not app.events("session_timeout")


def test_repeated_failures_lock_sign_in_and_the_admin_sees_and_ends_the_lock(dashboard) -> None:
    app = dashboard()
    for _ in range(5):
        app.sign_in("clin", "not the password")
    app.sign_in("clin")  # the right password, too late
    assert "Too many failed sign-ins" in app.at.error[0].value
    assert SESSION not in app.at.session_state
    reasons = sorted(e.detail["reason"] for e in app.events("sign_in_failed"))
    assert reasons == ["locked"] + ["wrong_password"] * 5
    admin = dashboard().sign_in("adm").go("views/users.py")
    locks = next(f.value for f in admin.at.dataframe if "scope" in f.value.columns)
    assert locks[["scope", "account or client", "failed sign-ins"]].values.tolist() == [
        ["account", "clin", 5]
    ]
    admin.at.button(key="users_unlock").click()
    admin.run_app()
    assert "Sign-in lock of 'clin' ended." in admin.at.success[0].value
    assert dashboard().sign_in("clin").at.title[0].value == "Worklist"
