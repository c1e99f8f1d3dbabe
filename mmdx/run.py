"""The run directory (Contract 3): where each artifact of a training run lives.

``runs/<name>/`` holds the model bundle, ``predictions.parquet``, ``metrics.json``, ``explanations/``,
the validation report and the audit report. The dashboard and the audit builder read only this directory
and the review store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mmdx.errors import MmdxError


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.parquet"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def explanations(self) -> Path:
        return self.root / "explanations"

    @property
    def validation_report(self) -> Path:
        return self.root / "validation_report.json"

    @property
    def training(self) -> Path:
        return self.root / "training.json"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def create(self) -> RunPaths:
        """Create the run directory readable by its owner only (it holds patient-derived data)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        return self

    def require(self, *names: str) -> None:
        """Raise a clear error naming the first missing artifact (``predictions``, ``metrics``, ...)."""
        hints = {
            "bundle": "run 'mmdx train' first",
            "predictions": "run 'mmdx evaluate RUN' first",
            "metrics": "run 'mmdx evaluate RUN' first",
            "explanations": "run 'mmdx explain RUN' first",
            "validation_report": "run 'mmdx evaluate RUN' (it validates the cohort) first",
        }
        if not self.root.is_dir():
            raise MmdxError(f"run directory not found: {self.root}")
        for name in names:
            path = getattr(self, name)
            if not path.exists():
                raise MmdxError(f"{path} is missing from the run; {hints.get(name, 'regenerate the run')}")

    def read_json(self, name: str) -> dict:
        self.require(name)
        path = getattr(self, name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MmdxError(f"{path} is not valid JSON ({exc}); regenerate it") from None
