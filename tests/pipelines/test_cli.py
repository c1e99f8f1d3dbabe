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


@pytest.fixture
def failing_command(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A subcommand with a bug: it raises an exception that is not an input error."""
    (tmp_path / "mmdx_test_failing_cmd.py").write_text(
        "def add_parser(sub):\n    sub.add_parser('failing', help='a command with a bug')\n\n"
        "def run(args):\n    raise KeyError('internal\\nstate')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    failing = cli.CommandSpec("failing", "mmdx_test_failing_cmd", "a command with a bug")
    monkeypatch.setattr(cli, "COMMANDS", _with(failing))
    yield "failing"
    sys.modules.pop("mmdx_test_failing_cmd", None)


def test_an_unexpected_error_is_one_line_and_the_traceback_needs_verbose(
    failing_command: str, capsys
) -> None:
    assert cli.main([failing_command]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected error: KeyError" in err and "mmdx -v failing" in err
    with pytest.raises(KeyError):
        cli.main(["-v", failing_command])


def _interrupt(command: list[str], after_s: float, cwd) -> tuple[int, str]:
    """Start ``command`` in a session of its own, press Ctrl+C (SIGINT to the whole process group, as a
    terminal does) ``after_s`` seconds after its first step began (its first ``===`` line, so that a slow
    start on a busy machine is not mistaken for a Ctrl+C ignored); returns (exit status, stdout + stderr)."""
    import os
    import signal
    import subprocess
    import time

    def terminal_like() -> None:
        # a shell starts commands with Ctrl+C at its default and unblocked, whatever the test process inherited
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=terminal_like,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("==="):
            break
    time.sleep(after_s)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    return process.returncode, "".join(seen) + output


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_cleanly_even_under_make(tmp_path) -> None:
    """Ctrl+C is how the demo's dashboard is closed: no traceback, and no "Error 130" from make."""
    import os
    import shutil
    from pathlib import Path

    repo = Path(cli.__file__).resolve().parents[1]
    demo = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "demo",
        "--cohort",
        str(tmp_path / "c"),
        "--run",
        str(tmp_path / "r"),
    ]
    rc, output = _interrupt([*demo, "--cases", "400"], 6.0, repo)
    assert rc == 0 and "mmdx demo: stopped (Ctrl+C)" in output and "Traceback" not in output, output[-2000:]
    if shutil.which("make") is None:
        message = "make is not installed; apt-get install make"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    (tmp_path / "Makefile").write_text("demo:\n\t" + " ".join(demo) + " --cases 400\n")
    _, output = _interrupt(["make", "-f", str(tmp_path / "Makefile"), "demo"], 6.0, repo)
    assert "stopped (Ctrl+C)" in output and "Error 130" not in output and "Traceback" not in output, output[
        -2000:
    ]


def test_a_stopped_demo_exits_0_even_if_shutdown_would_end_by_sigint(tmp_path) -> None:
    """Once the demo reports its Ctrl+C stop, nothing in the interpreter's shutdown decides the exit status:
    here an exit handler that re-raises SIGINT at its default (what a half-imported library did once)."""
    import subprocess
    from pathlib import Path

    script = (
        "import atexit, os, signal, sys\n"
        "from pipelines import cli, demo\n"
        "def shutdown_sigint():\n"
        "    signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "atexit.register(shutdown_sigint)\n"
        "def interrupted(args):\n"
        "    raise KeyboardInterrupt\n"
        "demo._run = interrupted\n"
        f"sys.exit(cli.main(['demo', '--cohort', {str(tmp_path / 'c')!r}, '--run', {str(tmp_path / 'r')!r}]))\n"
    )
    repo = Path(cli.__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert "mmdx demo: stopped (Ctrl+C)" in done.stdout and "Traceback" not in done.stderr
