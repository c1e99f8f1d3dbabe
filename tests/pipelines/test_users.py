"""``mmdx users``: the account commands against a real store."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from mmdx.errors import MmdxError
from mmdx.store import AuditAction, ReviewStore, Role
from pipelines import users

NEW_PASSWORD = "a long enough passphrase"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmdx")
    subparsers = parser.add_subparsers(dest="command")
    users.add_parser(subparsers)
    return parser


def _run(argv: list[str], stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return users.run(_parser().parse_args(["users", *argv]))


def _store_argv(url: str) -> list[str]:
    return ["--store", url, "--rounds", "4"]


def test_add_with_password_stdin_then_sign_in(store_url: str, monkeypatch, capsys) -> None:
    argv = ["add", "J.Smith", "--role", "clinician", "--password-stdin", *_store_argv(store_url)]
    assert _run(argv, NEW_PASSWORD + "\n", monkeypatch) == 0
    assert "added clinician account 'j.smith'" in capsys.readouterr().out
    with ReviewStore(store_url, bcrypt_rounds=4) as store:
        principal = store.authenticate("j.smith", NEW_PASSWORD)
        assert principal is not None and principal.role == Role.CLINICIAN
        assert store.authenticate("j.smith", NEW_PASSWORD + "\n") is None  # the newline is not part of it
        store.add_user("auditor1", "auditor", NEW_PASSWORD, actor=users._operator())
        auditor = store.authenticate("auditor1", NEW_PASSWORD)
        added = store.audit_events(auditor, action=AuditAction.USER_ADDED)[-1]  # the oldest
        assert added.user.startswith("operator:") and added.detail["name"] == "j.smith"


def test_interactive_prompt_asks_twice_and_refuses_a_mismatch(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path}/review.sqlite"
    monkeypatch.setattr(sys, "stdin", _Tty())
    answers = iter([NEW_PASSWORD, NEW_PASSWORD, NEW_PASSWORD, "something else"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(users.getpass, "getpass", fake_getpass)
    assert _run(["add", "ann", "--role", "admin", *_store_argv(url)]) == 0
    assert prompts == ["Password for ann: ", "Repeat the password: "]
    with pytest.raises(MmdxError, match="the two passwords differ"):
        _run(["add", "ben", "--role", "admin", *_store_argv(url)])
    with ReviewStore(url, bcrypt_rounds=4) as store:
        assert [u.name for u in store.list_users(users._operator())] == ["ann"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_terminal_and_no_password_stdin_is_refused(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(MmdxError, match="use --password-stdin"):
        _run(["add", "ann", "--role", "admin", *_store_argv(str(tmp_path))], "", monkeypatch)
    with pytest.raises(MmdxError, match="empty line"):
        _run(
            ["add", "ann", "--role", "admin", "--password-stdin", *_store_argv(str(tmp_path))],
            "\n",
            monkeypatch,
        )


def test_list_deactivate_activate_passwd(store_url: str, monkeypatch, capsys) -> None:
    for name, role in (("zoe", "auditor"), ("ann", "clinician")):
        _run(
            ["add", name, "--role", role, "--password-stdin", *_store_argv(store_url)],
            NEW_PASSWORD,
            monkeypatch,
        )
    capsys.readouterr()

    assert _run(["deactivate", "ann", "--store", store_url]) == 0
    assert "account 'ann' is deactivated" in capsys.readouterr().out
    assert _run(["list", "--store", store_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "role", "active", "created", "(UTC)"]
    assert [line.split()[:3] for line in lines[1:]] == [["ann", "clinician", "no"], ["zoe", "auditor", "yes"]]

    assert _run(["activate", "ann", "--store", store_url]) == 0
    argv = ["passwd", "ann", "--password-stdin", *_store_argv(store_url)]
    assert _run(argv, "the newer passphrase\n", monkeypatch) == 0
    with ReviewStore(store_url, bcrypt_rounds=4) as store:
        assert store.authenticate("ann", NEW_PASSWORD) is None
        assert store.authenticate("ann", "the newer passphrase") is not None


def test_errors_are_user_errors(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path}/review.sqlite"
    _run(["add", "ann", "--role", "admin", "--password-stdin", *_store_argv(url)], NEW_PASSWORD, monkeypatch)
    with pytest.raises(MmdxError, match="already exists"):
        _run(
            ["add", "ANN", "--role", "clinician", "--password-stdin", *_store_argv(url)],
            NEW_PASSWORD,
            monkeypatch,
        )
    with pytest.raises(MmdxError, match="too short"):
        _run(
            ["add", "ben", "--role", "clinician", "--password-stdin", *_store_argv(url)], "short", monkeypatch
        )
    with pytest.raises(MmdxError, match="no user named 'nobody'"):
        _run(["deactivate", "nobody", "--store", url])


def test_list_of_an_empty_store_says_how_to_start(tmp_path: Path, capsys) -> None:
    assert _run(["list", "--store", str(tmp_path)]) == 0
    assert "mmdx users add NAME --role admin" in capsys.readouterr().out
    assert (tmp_path / "review.sqlite").is_file()  # a run directory means its review.sqlite


def test_store_comes_from_the_environment(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(users.STORE_ENV, f"sqlite:///{tmp_path}/from-env.sqlite")
    assert _run(["list"]) == 0
    assert (tmp_path / "from-env.sqlite").is_file()


def test_missing_or_bad_store_is_explained(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(users.STORE_ENV, raising=False)
    with pytest.raises(MmdxError, match="no review store given: pass --store URL"):
        _run(["list"])
    with pytest.raises(MmdxError, match="neither a URL"):
        _run(["list", "--store", str(tmp_path / "missing")])


def test_help_explains_the_store_and_roles(capsys) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["users", "--help"])
    text = capsys.readouterr().out
    assert users.STORE_ENV in text and "--store" in text
    assert all(role.value in text for role in Role)
    with pytest.raises(SystemExit):
        _parser().parse_args(["users", "add", "x", "--role", "superuser"])


def test_locks_lists_and_unlock_ends_an_account_lock(store_url: str, monkeypatch, capsys) -> None:
    from mmdx.store import Operator, SignInLocked

    with ReviewStore(store_url, bcrypt_rounds=4) as store:
        store.add_user("boss", Role.ADMIN, NEW_PASSWORD, actor=Operator("tests"))
        for _ in range(6):
            try:
                store.authenticate("boss", "a wrong passphrase")
            except SignInLocked:
                pass
    assert _run(["locks", "--store", store_url]) == 0
    assert "account boss: 5 failures, locked until" in capsys.readouterr().out
    assert _run(["unlock", "boss", "--store", store_url]) == 0
    assert "sign-in lock of 'boss' cleared" in capsys.readouterr().out
    with ReviewStore(store_url, bcrypt_rounds=4) as store:
        assert store.authenticate("boss", NEW_PASSWORD) is not None
        events = store.audit_events(
            store.authenticate("boss", NEW_PASSWORD), action=AuditAction.USER_ACTIVATED
        )
        assert [e.detail for e in events] == [{"name": "boss", "cleared": "sign_in_lock"}]
    assert _run(["locks", "--store", store_url]) == 0
    assert "no sign-in lock in force" in capsys.readouterr().out
