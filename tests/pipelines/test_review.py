"""``mmdx review``: its options reach the server, the store defaults to the run's, errors are one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from clinical_ui import launch
from mmdx.errors import MmdxError
from mmdx.store import Operator, ReviewStore, Role, default_store_url
from pipelines import cli
from pipelines import review as review_cli


def test_a_run_without_predictions_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "half" / "bundle").mkdir(parents=True)
    assert cli.main(["review", str(tmp_path / "half")]) == 2


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(launch, "serve", lambda *args, **kwargs: calls.append((args, kwargs)) or 0)
    monkeypatch.delenv("MMDX_STORE_URL", raising=False)
    return calls


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    review_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["review", *argv])


def test_mmdx_review_defaults_and_address(review_run, tmp_path: Path, served, capsys) -> None:
    store_url = f"sqlite:///{tmp_path / 'review.sqlite'}"
    assert review_cli.run(_args(str(review_run.path), "--store", store_url, "--idle-timeout", "5")) == 0
    ((args, kwargs),) = served
    assert args == (str(review_run.path.resolve()), store_url, 8501, "127.0.0.1")
    assert kwargs["idle_timeout_s"] == 300
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8501" in out and "no active account" in out and "mmdx users add" in out
    with ReviewStore(store_url) as store:
        store.add_user("clin", Role.CLINICIAN, "long enough pw", actor=Operator("tests"))
    review_cli.run(_args(str(review_run.path), "--store", store_url, "--host", "0.0.0.0", "--port", "9000"))
    out = capsys.readouterr().out
    assert "no active account" not in out and "warning: listening on 0.0.0.0" in out
    assert "http://127.0.0.1:9000" in out
    with pytest.raises(MmdxError, match="idle-timeout"):
        review_cli.run(_args(str(review_run.path), "--idle-timeout", "0"))


def test_mmdx_review_store_defaults_to_the_run(run_copy_for_cli: Path, served) -> None:
    review_cli.run(_args(str(run_copy_for_cli)))
    ((args, _),) = served
    assert args[1] == default_store_url(run_copy_for_cli)
    assert (run_copy_for_cli / "review.sqlite").is_file()


@pytest.fixture
def run_copy_for_cli(review_run, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "run"
    shutil.copytree(review_run.path, target, ignore=shutil.ignore_patterns("checkpoints", "review.sqlite*"))
    return target
