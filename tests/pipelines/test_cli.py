"""The ``mmdx`` entry point: every command listed, and a command whose dependency is missing says so."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from mmdx.registry import Registry
from pipelines import cli


def test_every_command_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for spec in cli.COMMANDS:
        assert spec.name in out and spec.help in " ".join(out.split())


def _with(*extra: cli.CommandSpec) -> Registry[cli.CommandSpec]:
    commands: Registry[cli.CommandSpec] = Registry("command")
    for spec in [*cli.COMMANDS, *extra]:
        commands.register(spec)
    return commands


@pytest.mark.parametrize("spec", cli.COMMANDS.specs(), ids=cli.COMMANDS.names())
def test_each_module_describes_its_command_as_the_listing_does(spec: cli.CommandSpec) -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(spec.module).add_parser(subparsers)
    (action,) = subparsers._choices_actions
    assert action.dest == spec.name and action.help == spec.help


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys; from pipelines import cli; cli.build_parser()\n"
        "heavy = [m for m in ('torch', 'pandas', 'sqlalchemy', 'pipelines.train') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def broken_command(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A subcommand module that imports a package which is not installed."""
    (tmp_path / "mmdx_test_broken_cmd.py").write_text("import mmdx_no_such_package.sub\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = cli.CommandSpec("broken", "mmdx_test_broken_cmd", "a command whose import fails")
    monkeypatch.setattr(cli, "COMMANDS", _with(broken))
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
    assert "broken" in capsys.readouterr().out  # listed without importing it


def test_a_command_whose_package_is_missing_is_marked_in_the_listing(monkeypatch, capsys) -> None:
    needy = cli.CommandSpec("needy", "pipelines.synth", "needs a package", ("mmdx_no_such_package",))
    monkeypatch.setattr(cli, "COMMANDS", _with(needy))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listing = " ".join(capsys.readouterr().out.split())
    assert "needy (unavailable here: needs the Python package 'mmdx_no_such_package')" in listing
    assert cli.main(["needy"]) == 2
    assert "'mmdx_no_such_package'" in capsys.readouterr().err


def test_unknown_options_are_still_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", "out", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_missing_command_module_is_a_bug_not_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", _with(cli.CommandSpec("ghost", "pipelines.no_such_command", "?")))
    cli.build_parser()  # listing it imports nothing
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser("ghost")
