"""Safe artifacts: no pickle path in the source tree, owner-only run and cache folders.

(The crafted-pickle bundle test needs a trained bundle and lives in ``test_pipeline_phi.py``.)
"""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

from mmdx.config import ImageConfig
from mmdx.data.dataset import ImageCache
from mmdx.run import RunPaths

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("mmdx", "pipelines", "clinical_ui")
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve"}


def _const_true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords
    )


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def unsafe_loading(source: str) -> list[str]:
    """What in ``source`` could execute code while loading data: pickle-family imports, ``torch.load``
    without ``weights_only=True``, ``np.load(..., allow_pickle=True)``, pandas pickles."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            problems += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED_MODULES:
            problems.append(f"from {node.module} import")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module == "torch"
            and any(a.name == "load" for a in node.names)
        ):
            problems.append("from torch import load (call torch.load(..., weights_only=True) instead)")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == "torch.load" and not _const_true(node, "weights_only"):
                problems.append(f"line {node.lineno}: torch.load without weights_only=True")
            if name.endswith(("np.load", "numpy.load")) and _const_true(node, "allow_pickle"):
                problems.append(f"line {node.lineno}: np.load with allow_pickle=True")
            if name.endswith(("read_pickle", "to_pickle")):
                problems.append(f"line {node.lineno}: {name}")
            if name == "__import__" and node.args and isinstance(node.args[0], ast.Constant):
                if str(node.args[0].value).split(".")[0] in BANNED_MODULES:
                    problems.append(f"line {node.lineno}: __import__({node.args[0].value!r})")
    return problems


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "import joblib as jl",
        "from dill import loads",
        "import torch\nstate = torch.load('m.pt')",
        "import torch\nstate = torch.load('m.pt', weights_only=False)",
        "import numpy as np\nx = np.load('a.npy', allow_pickle=True)",
        "import pandas as pd\nx = pd.read_pickle('f')",
        "m = __import__('pickle')",
        "from torch import load",
    ],
)
def test_the_checker_catches_each_unsafe_pattern(snippet: str) -> None:
    assert unsafe_loading(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\nstate = torch.load('m.pt', weights_only=True)",
        "import numpy as np\nx = np.load('a.npz', allow_pickle=False)",
        "from safetensors.torch import load_file",
    ],
)
def test_the_checker_accepts_safe_loading(snippet: str) -> None:
    assert unsafe_loading(snippet) == []


def test_no_unsafe_loading_anywhere_in_the_source_tree() -> None:
    files = [p for d in SOURCE_DIRS if (ROOT / d).is_dir() for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    found = {str(p.relative_to(ROOT)): unsafe_loading(p.read_text(encoding="utf-8")) for p in files}
    assert {k: v for k, v in found.items() if v} == {}


@pytest.fixture
def permissive_umask():
    previous = os.umask(0o002)  # a group-writable default must not leak into patient-data folders
    try:
        yield
    finally:
        os.umask(previous)


def test_run_directory_is_owner_only(tmp_path: Path, permissive_umask) -> None:
    run = RunPaths(tmp_path / "runs" / "r1").create()
    assert stat.S_IMODE(run.root.stat().st_mode) == 0o700


def test_image_cache_directory_is_owner_only(tmp_path: Path, permissive_umask) -> None:
    cache = ImageCache(
        ImageConfig(dims=2, shape=[16, 16], spacing=None),
        mode="disk",
        directory=tmp_path / "cache" / "images",
    )
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700
