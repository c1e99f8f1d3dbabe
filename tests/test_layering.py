"""The import-layering contract (ARCHITECTURE.md, "Layers"), checked on the source tree.

* The library (``mmdx``) imports neither the command line (``pipelines``), the dashboard
  (``clinical_ui``), the benchmarks nor the tests.
* The dashboard does not import the command line.
* Only the command line and its own tests (``tests/pipelines``) import ``pipelines``: benchmarks and every
  other test call the library's workflows.
* Inside the library, a module imports only its own layer and those below (:data:`LAYERS`), so a lower
  layer never depends on a higher one. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPLICATIONS = ("pipelines", "clinical_ui", "benchmarks", "tests")

#: The library's layers, lowest first.
LAYERS: list[tuple[str, ...]] = [
    (
        "mmdx.errors",
        "mmdx.keys",
        "mmdx.registry",
        "mmdx.metrics",
        "mmdx.statistics",
        "mmdx.shift",
        "mmdx.config",
        "mmdx.owner_only",
        "mmdx.workers",
        "mmdx.dicomweb",
    ),  # foundations, and the connection to a PACS that importing and exporting share
    (
        "mmdx.data",
        "mmdx.deid",
        "mmdx.importers",
    ),  # the cohort directory: read, validate, synthesise, de-identify, import
    ("mmdx.models", "mmdx.training", "mmdx.bundle"),  # the model and the model bundle
    ("mmdx.predict", "mmdx.explain", "mmdx.run", "mmdx.store"),  # what a run produces and keeps
    # what reads a run: the audit report, the dashboard's logic, the DICOM export
    ("mmdx.audit", "mmdx.review", "mmdx.export"),
    ("mmdx.workflows",),  # train, evaluate, explain, predict, audit, export
]
#: ``mmdx/__init__.py`` re-exports :func:`mmdx.load_bundle` lazily: the package's front door, not a layer.
FRONT_DOOR = {"mmdx": {"mmdx.bundle"}}

# an import statement in a shell script's embedded Python
_SHELL_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", re.MULTILINE)


def imported_modules(source: str) -> list[str]:
    """Every absolute module an import statement of ``source`` names, wherever the statement is."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of the longest prefix naming ``module``'s package; None outside."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (index, len(prefix))
    return None if best is None else best[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _python_files(*folders: str) -> list[Path]:
    """The project's own sources: hidden folders (the peers' virtual environments under
    ``benchmarks/peers/.envs``, caches) hold other projects' files."""
    return sorted(
        p
        for folder in folders
        for p in (ROOT / folder).rglob("*.py")
        if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    )


def _top(module: str) -> str:
    return module.split(".")[0]


def upward_imports(module: str, imported: list[str]) -> list[str]:
    """The imports of ``module`` that break the layering: an application, or a higher library layer."""
    own = layer_of(module)
    broken = [name for name in imported if _top(name) in APPLICATIONS]
    for name in imported:
        theirs = layer_of(name)
        if own is None or theirs is None or theirs <= own or name in FRONT_DOOR.get(module, ()):
            continue
        broken.append(name)
    return broken


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("mmdx.data.cohort", "from pipelines.cli import main", ["pipelines.cli"]),
        ("mmdx.data.cohort", "def f():\n    import clinical_ui.app", ["clinical_ui.app"]),
        ("mmdx.data.cohort", "from mmdx.audit import report", ["mmdx.audit"]),
        ("mmdx.metrics", "import mmdx.workflows.train", ["mmdx.workflows.train"]),
        ("mmdx.audit.report", "from mmdx.run import RunPaths\nfrom mmdx.metrics import auroc", []),
        ("mmdx.workflows.train", "from mmdx.models.classifier import build_model", []),
        ("mmdx", "def load_bundle(p):\n    from mmdx.bundle import load_bundle", []),
    ],
)
def test_the_checker_finds_what_it_should(module: str, source: str, broken: list[str]) -> None:
    assert upward_imports(module, imported_modules(source)) == broken


def test_the_library_imports_no_application_and_no_higher_layer() -> None:
    problems = {}
    for path in _python_files("mmdx"):
        module = module_name(path)
        assert module == "mmdx" or layer_of(module) is not None, f"{module}: add its package to LAYERS"
        broken = upward_imports(module, imported_modules(path.read_text(encoding="utf-8")))
        if broken:
            problems[module] = broken
    assert not problems, f"imports against the layering: {problems}"


def test_the_dashboard_does_not_import_the_command_line() -> None:
    problems = {
        module_name(path): [
            n
            for n in imported_modules(path.read_text(encoding="utf-8"))
            if _top(n) != "mmdx" and _top(n) in ("pipelines", "benchmarks", "tests")
        ]
        for path in _python_files("clinical_ui")
    }
    assert not {m: b for m, b in problems.items() if b}


def test_only_the_command_line_and_its_tests_import_it() -> None:
    own_tests = ROOT / "tests" / "pipelines"
    problems = {}
    for path in _python_files("mmdx", "clinical_ui", "benchmarks", "tests"):
        if own_tests in path.parents:
            continue
        found = [n for n in imported_modules(path.read_text(encoding="utf-8")) if _top(n) == "pipelines"]
        if found:
            problems[str(path.relative_to(ROOT))] = found
    for script in sorted((ROOT / "benchmarks").rglob("*.sh")):
        found = [
            n for n in _SHELL_IMPORT.findall(script.read_text(encoding="utf-8")) if _top(n) == "pipelines"
        ]
        if found:
            problems[str(script.relative_to(ROOT))] = found
    assert not problems, f"import the library's workflows (mmdx.workflows) instead of pipelines: {problems}"
