"""The run directory: where each artifact of a training run lives, and the one reader and writer of each.

::

    runs/<name>/
        bundle/                   the model bundle (mmdx.bundle writes and reads it)
        preprocessing/            the preprocessing fitted on the training split (kept for --resume)
        checkpoints/              the trainer's last checkpoint and best weights (mmdx.training.trainer);
                                  with train.pretrain, the pretrained encoders and pretrain.json
        validation_report.json    the cohort's validation report (mmdx train, then mmdx evaluate)
        training.json             the training summary (mmdx train)
        out_of_fold.json          with train.cross_validation_folds: every training case's logit from the
                                  fold model that did not train on it (mmdx.training.cross_fit); folds/
                                  while those models train
        predictions.parquet       one row per predicted case (mmdx evaluate); data_schemas/predictions.schema.json
        metrics.json              metrics per split, pattern and removed modality; data_schemas/metrics.schema.json
        explanations/             index.json, summary.json and one folder per case (mmdx explain; the format
                                  is :mod:`mmdx.explain.artifacts`); data_schemas/explanations_index.schema.json
        audit/                    audit_report.html and .json (mmdx audit)
        external/<site>/          an evaluation on another site's cohort (mmdx evaluate --name SITE):
                                  predictions.parquet, metrics.json, validation_report.json, drift.json,
                                  recalibration.json; the run's own files above are never touched
        calibrations/<site>-v<k>/ local recalibrations of the bundle (mmdx.training.recalibration)
        review.sqlite             the default review store (verdicts and the access trail)

Every workflow, the audit and the dashboard go through :class:`RunPaths` for these files. Apart from the
owners named above (the bundle's files, the trainer's checkpoints, the format of the explanations folder),
no module joins a run-directory path by hand, parses ``predictions.parquet`` or writes ``metrics.json``. The checks
that a file has the shape its schema promises sit here, in its reader. The dashboard and the audit builder
read only this directory and the review store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdx.errors import MmdxError

if TYPE_CHECKING:
    import pandas as pd

    from mmdx.data.dataset import Preprocessing
    from mmdx.data.validation import ValidationReport
    from mmdx.explain.artifacts import CaseFiles, ExplanationWriter

#: File name of the default review store inside a run directory.
STORE_FILENAME = "review.sqlite"
#: JSON Schema of one row of ``predictions.parquet`` (package ``data_schemas``).
PREDICTIONS_SCHEMA = "predictions.schema.json"
#: JSON Schema of ``metrics.json``.
METRICS_SCHEMA = "metrics.schema.json"

# what to run when an artifact is missing
_HINTS = {
    "bundle": "run 'mmdx train' first",
    "predictions": "run 'mmdx evaluate RUN' first",
    "metrics": "run 'mmdx evaluate RUN' first",
    "explanations": "run 'mmdx explain RUN' first",
    "validation_report": "run 'mmdx evaluate RUN' (it validates the cohort) first",
}
#: An external evaluation's folder under ``RUN/external/``.
EXTERNAL_DIR = "external"
CALIBRATIONS_DIR = "calibrations"


@cache
def prediction_columns() -> tuple[str, ...]:
    """The columns every ``predictions.parquet`` has: the ``required`` list of its packaged schema."""
    from data_schemas import schema_path

    schema = json.loads(schema_path(PREDICTIONS_SCHEMA).read_text(encoding="utf-8"))
    return tuple(schema["required"])


@dataclass(frozen=True)
class RunPaths:
    """A run directory: the path of every artifact and its typed reader and writer."""

    root: Path

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def preprocessing(self) -> Path:
        return self.root / "preprocessing"

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
    def image_method_choice(self) -> Path:
        return self.root / "image_method_choice.json"

    @property
    def validation_report(self) -> Path:
        return self.root / "validation_report.json"

    @property
    def training(self) -> Path:
        return self.root / "training.json"

    @property
    def out_of_fold(self) -> Path:
        return self.root / "out_of_fold.json"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def ensemble_member(self, index: int) -> Path:
        """The training directory (checkpoints) of ensemble member ``index >= 1`` (member 0 trains in the run's
        own ``checkpoints/``)."""
        return self.root / "ensemble" / f"member{index}"

    @property
    def pretrained_encoders(self) -> Path:
        """The encoders' weights after ``train.pretrain`` (written and read, on ``--resume``, by
        :mod:`mmdx.training.contrastive`)."""
        return self.checkpoints / "pretrained_encoders.safetensors"

    @property
    def pretrain_record(self) -> Path:
        """What ``train.pretrain`` did (epochs, losses, pairs), beside :attr:`pretrained_encoders`."""
        return self.checkpoints / "pretrain.json"

    @property
    def calibrations(self) -> Path:
        """Where local recalibrations of the bundle go (``calibrations/<site>-v<k>/``)."""
        return self.root / CALIBRATIONS_DIR

    def external(self, site: str) -> ExternalPaths:
        """The folder of the evaluation on ``site``'s cohort (``external/<site>/``)."""
        from mmdx.training.recalibration import check_site

        try:
            check_site(site)
        except ValueError as exc:
            raise MmdxError(str(exc)) from None
        return ExternalPaths(self.root / EXTERNAL_DIR / site, site)

    def external_sites(self) -> list[str]:
        """The sites with an external evaluation in this run, sorted."""
        folder = self.root / EXTERNAL_DIR
        return (
            sorted(p.name for p in folder.iterdir() if (p / "metrics.json").is_file())
            if folder.is_dir()
            else []
        )

    @property
    def review_store(self) -> Path:
        return self.root / STORE_FILENAME

    @property
    def review_store_url(self) -> str:
        """The default review store of the run: ``sqlite:///<absolute run dir>/review.sqlite``."""
        return f"sqlite:///{(self.root.expanduser().resolve() / STORE_FILENAME).as_posix()}"

    def create(self) -> RunPaths:
        """Create the run directory readable by its owner only (it holds patient-derived data)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        return self

    def holds_a_run(self) -> bool:
        """Whether the directory exists and is not empty."""
        return self.root.exists() and any(self.root.iterdir())

    def require(self, *names: str) -> None:
        """Raise a clear error naming the first missing artifact (``predictions``, ``metrics``, ...)."""
        if not self.root.is_dir():
            raise MmdxError(f"run directory not found: {self.root}")
        for name in names:
            path = getattr(self, name)
            if not path.exists():
                raise MmdxError(f"{path} is missing from the run; {_HINTS.get(name, 'regenerate the run')}")

    def artifacts(self) -> dict[str, Path]:
        """The run's single-file artifacts by their name in the run directory (for fingerprints)."""
        from mmdx.bundle import MANIFEST
        from mmdx.explain.artifacts import INDEX, SUMMARY

        return {
            "predictions.parquet": self.predictions,
            "metrics.json": self.metrics,
            "validation_report.json": self.validation_report,
            "training.json": self.training,
            "image_method_choice.json": self.image_method_choice,
            f"bundle/{MANIFEST}": self.bundle / MANIFEST,
            f"explanations/{SUMMARY}": self.explanations / SUMMARY,
            f"explanations/{INDEX}": self.explanations / INDEX,
        }

    # ---------------------------------------------------------------------------------------------------
    # predictions.parquet (mmdx evaluate)

    def write_predictions(self, frame: pd.DataFrame) -> Path:
        """Write the predictions table; it must hold every column of the predictions schema."""
        return _write_predictions(self.predictions, frame)

    def read_predictions(self) -> pd.DataFrame:
        """The predictions table, checked for the columns of its schema; ``case_id`` as ``str``."""
        self.require("predictions")
        return _read_predictions(self.predictions, "mmdx evaluate RUN")

    # ---------------------------------------------------------------------------------------------------
    # metrics.json (mmdx evaluate), training.json (mmdx train), validation_report.json

    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        return _write_json(self.metrics, metrics)

    def read_metrics(self) -> dict[str, Any] | None:
        """``metrics.json``, or None when the run has not been evaluated."""
        return _read_optional_json(self.metrics, "mmdx evaluate RUN")

    def write_image_method_choice(self, choice: Mapping[str, Any]) -> Path:
        return _write_json(self.image_method_choice, choice)

    def read_image_method_choice(self) -> dict[str, Any] | None:
        """``image_method_choice.json`` (which method draws image maps, and why), or None."""
        return _read_optional_json(self.image_method_choice, "mmdx explain RUN --image-method auto")

    def write_training_summary(self, summary: Mapping[str, Any]) -> Path:
        return _write_json(self.training, summary)

    def read_training_summary(self) -> dict[str, Any] | None:
        """``training.json``, or None when training has not finished."""
        return _read_optional_json(self.training, "mmdx train")

    def write_out_of_fold(self, record: Mapping[str, Any]) -> Path:
        return _write_json(self.out_of_fold, record)

    def read_out_of_fold(self) -> dict[str, Any] | None:
        """``out_of_fold.json`` (a run trained with ``train.cross_validation_folds``), or None."""
        return _read_optional_json(self.out_of_fold, "mmdx train --set train.cross_validation_folds=5")

    def write_validation_report(self, report: ValidationReport) -> Path:
        report.write(self.validation_report)
        return self.validation_report

    def read_validation_report(self) -> dict[str, Any] | None:
        """The parsed ``validation_report.json``, or None when it is missing."""
        return _read_optional_json(self.validation_report, "mmdx evaluate RUN")

    # ---------------------------------------------------------------------------------------------------
    # preprocessing/ (mmdx train; a resumed run reuses it)

    def save_preprocessing(self, preprocessing: Preprocessing) -> Path:
        self.preprocessing.mkdir(exist_ok=True, mode=0o700)
        preprocessing.save(self.preprocessing)
        return self.preprocessing

    def load_preprocessing(self) -> Preprocessing | None:
        """The preprocessing an earlier (interrupted) training of this run fitted, or None."""
        from mmdx.data.dataset import Preprocessing

        if not (self.preprocessing / "preprocessing.json").is_file():
            return None
        return Preprocessing.load(self.preprocessing)

    # ---------------------------------------------------------------------------------------------------
    # explanations/ (mmdx explain); the folder's format belongs to mmdx.explain.artifacts

    def explanation_writer(self) -> ExplanationWriter:
        """A writer that fills a staging folder and replaces ``explanations/`` when it commits."""
        from mmdx.explain.artifacts import ExplanationWriter

        return ExplanationWriter(self.explanations)

    def read_explanation_index(self) -> dict[str, Any]:
        from mmdx.explain.artifacts import read_index

        return read_index(self.explanations)

    def read_explanation_summary(self) -> dict[str, Any]:
        from mmdx.explain.artifacts import read_summary

        return read_summary(self.explanations)

    def read_explanation_case(self, case_id: str, method_suffix: str = "") -> CaseFiles:
        from mmdx.explain.artifacts import read_case

        return read_case(self.explanations, case_id, method_suffix)

    def explanation_case_file(self, case_id: str, name: str) -> Path:
        """A file listed by one case's explanation (e.g. its attribution on the original image's grid)."""
        from mmdx.explain.artifacts import case_file

        return case_file(self.explanations, case_id, name)


@dataclass(frozen=True)
class ExternalPaths:
    """``RUN/external/<site>/``: one external evaluation (``mmdx evaluate RUN --cohort DIR --name SITE``).

    ``predictions.parquet`` has the run's predictions schema (``split`` is ``test`` for the cases scored and
    ``val`` for the local labelled sample a recalibration was fitted on), ``metrics.json`` the metrics with
    intervals, ``drift.json`` the drift report, ``recalibration.json`` what each recalibration did."""

    root: Path
    site: str

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.parquet"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def validation_report(self) -> Path:
        return self.root / "validation_report.json"

    @property
    def drift(self) -> Path:
        return self.root / "drift.json"

    @property
    def recalibration(self) -> Path:
        return self.root / "recalibration.json"

    def _hint(self) -> str:
        return f"mmdx evaluate RUN --cohort DIR --name {self.site}"

    def create(self) -> ExternalPaths:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    def require(self) -> None:
        if not self.metrics.is_file() or not self.predictions.is_file():
            raise MmdxError(
                f"no external evaluation '{self.site}' in {self.root.parent.parent}; run '{self._hint()}'"
            )

    def write_predictions(self, frame: pd.DataFrame) -> Path:
        return _write_predictions(self.predictions, frame)

    def read_predictions(self) -> pd.DataFrame:
        self.require()
        return _read_predictions(self.predictions, self._hint())

    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        return _write_json(self.metrics, metrics)

    def read_metrics(self) -> dict[str, Any] | None:
        return _read_optional_json(self.metrics, self._hint())

    def write_drift(self, report: Mapping[str, Any]) -> Path:
        return _write_json(self.drift, report)

    def read_drift(self) -> dict[str, Any] | None:
        return _read_optional_json(self.drift, self._hint())

    def write_recalibration(self, results: Mapping[str, Any]) -> Path:
        return _write_json(self.recalibration, results)

    def read_recalibration(self) -> dict[str, Any] | None:
        return _read_optional_json(self.recalibration, self._hint())

    def write_validation_report(self, report: ValidationReport) -> Path:
        report.write(self.validation_report)
        return self.validation_report


def _write_predictions(path: Path, frame: pd.DataFrame) -> Path:
    missing = [c for c in prediction_columns() if c not in frame.columns]
    if missing:
        raise ValueError(f"the predictions table lacks the column(s) {', '.join(missing)}")
    frame.to_parquet(path, index=False)
    return path


def _read_predictions(path: Path, command: str) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise MmdxError(f"{path} cannot be read ({exc}); run '{command}' again") from None
    missing = [c for c in prediction_columns() if c not in frame.columns]
    if missing:
        raise MmdxError(
            f"{path} lacks the column(s) {', '.join(missing)}; it was written by another mmdx version: "
            f"run '{command}' again"
        )
    frame["case_id"] = frame["case_id"].astype(str)
    return frame


def _write_json(path: Path, document: Mapping[str, Any]) -> Path:
    from mmdx.metrics import json_ready

    path.write_text(json.dumps(json_ready(dict(document)), indent=1), encoding="utf-8")
    return path


def _read_optional_json(path: Path, command: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MmdxError(f"{path} is not valid JSON ({exc}); run '{command}' to rewrite it") from None
    return document if isinstance(document, dict) else None
