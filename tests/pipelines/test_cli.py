"""The ``mmdx`` entry point: every command listed, and a command whose dependency is missing says so."""

from __future__ import annotations

import sys

import pytest

from pipelines import cli


def test_every_command_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.fixture
def broken_command(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A subcommand module that imports a package which is not installed."""
    (tmp_path / "mmdx_test_broken_cmd.py").write_text("import mmdx_no_such_package.sub\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "broken", "mmdx_test_broken_cmd")
    yield "broken"
    sys.modules.pop("mmdx_test_broken_cmd", None)


def test_missing_dependency_names_the_package(broken_command: str, capsys) -> None:
    assert cli.main([broken_command, "--some", "option"]) == 2
    err = capsys.readouterr().err
    assert "mmdx broken: error:" in err and "'mmdx_no_such_package'" in err and "pip install" in err
    assert "Traceback" not in err


def test_other_commands_still_work_beside_a_broken_one(broken_command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", "--help"])
    assert exit_info.value.code == 0
    assert "--cases" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listing = " ".join(capsys.readouterr().out.split())
    assert "broken (unavailable here: needs the Python package 'mmdx_no_such_package')" in listing


def test_unknown_options_are_still_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", "out", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_missing_command_module_is_a_bug_not_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli.COMMANDS, "ghost", "pipelines.no_such_command")
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser()
