"""The peer-neutral cohort export as the adapters read it, and the files every adapter writes.

This module runs inside each peer's own virtual environment, so it imports only the standard library,
numpy and pandas (never mmdx). ``benchmarks/peers/export.py`` writes what it reads.

An export directory holds, in one case order (the rows of ``cases.csv``):

* ``cases.csv``: ``case_id, split, label, has_image, has_tabular, has_text``;
* ``tabular.csv``: ``case_id``, the canonical value of every catalogue feature (catalogue units) and numeric
  case column (NaN = missing), then one 0/1 column per training-split category of each categorical column;
  a case without observations has its whole row missing (as in mmdx, where age, sex and site belong to the
  tabular modality);
* ``notes.jsonl``: ``{"case_id", "text"}`` per case, the notes joined in time order ("" when none);
* ``image2d.npy`` ``[N, H, W]`` float32 in [0, 1]: the image mmdx sees (2D cohorts) or its middle axial
  slice (3D cohorts); zeros where a case has no image. ``image3d.npy`` ``[N, D, H, W]``: 3D cohorts only;
* ``minilm.npy`` ``[N, 384]``: L2-normalised all-MiniLM-L6-v2 mean-pooled embeddings of the notes, and
  ``minilm_empty.npy`` ``[384]``: the embedding of the empty note;
* ``image_stats.npy`` ``[N, K]``: intensity and shape statistics of the full image (2D or 3D), and
  ``image_stats_blank.npy`` ``[K]``: the statistics of a blank image;
* ``manifest.json``: what produced it (cohort fingerprint, image settings, column lists, feature names).

Removing a modality at test time (``PeerModality``) makes it missing exactly as a case without it is
missing in the export: every tabular value missing (continuous NaN, category columns 0), the empty note
(and its embedding), a blank image (and its statistics).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

EXPORT_SCHEMA = 1


class PeerModality(StrEnum):
    """The three modalities; the same values as ``mmdx.keys.Modality`` (checked by the tests)."""

    IMAGE = "image"
    TABULAR = "tabular"
    TEXT = "text"


MODALITY_ORDER: tuple[PeerModality, ...] = (PeerModality.IMAGE, PeerModality.TABULAR, PeerModality.TEXT)


class ExportFile(StrEnum):
    MANIFEST = "manifest.json"
    CASES = "cases.csv"
    TABULAR = "tabular.csv"
    NOTES = "notes.jsonl"
    IMAGE_2D = "image2d.npy"
    IMAGE_3D = "image3d.npy"
    MINILM = "minilm.npy"
    MINILM_EMPTY = "minilm_empty.npy"
    IMAGE_STATS = "image_stats.npy"
    IMAGE_STATS_BLANK = "image_stats_blank.npy"


class OutputFile(StrEnum):
    """What an adapter writes into its ``--out`` directory."""

    PREDICTIONS = "predictions.csv"
    RESULT = "result.json"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


def extra_predictions_file(extra: str | Path) -> str:
    """The file, beside ``predictions.csv``, of the predictions on the further test cohort exported to
    ``extra`` (an export written with ``export.py --like``)."""
    return f"predictions_{Path(extra).name}.csv"


def probability_column(removed: PeerModality | None) -> str:
    """Column of ``predictions.csv`` holding the test probabilities with ``removed`` made missing."""
    return "probability" if removed is None else f"probability_without_{removed.value}"


class ExportError(ValueError):
    """An export directory that is missing, incomplete or of another schema version."""


class PeerExport:
    """Read access to an export directory (arrays are loaded on first use)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        manifest = self.directory / ExportFile.MANIFEST
        if not manifest.is_file():
            raise ExportError(
                f"{self.directory} is not a peer export (no {ExportFile.MANIFEST}); write one with "
                "`python -m benchmarks.peers.export COHORT OUT`"
            )
        self.manifest: dict = json.loads(manifest.read_text(encoding="utf-8"))
        if self.manifest.get("schema") != EXPORT_SCHEMA:
            raise ExportError(
                f"{manifest}: export schema {self.manifest.get('schema')!r}, expected {EXPORT_SCHEMA}; "
                "write the export again"
            )
        self.cases = pd.read_csv(self.directory / ExportFile.CASES, dtype={"case_id": str, "split": str})
        self._cache: dict[str, object] = {}

    # ---- cases ----------------------------------------------------------------------------------------
    @property
    def case_ids(self) -> list[str]:
        return self.cases["case_id"].tolist()

    @property
    def labels(self) -> np.ndarray:
        """``[N]`` float, 0/1 (NaN = unlabelled)."""
        return self.cases["label"].to_numpy(dtype=float)

    @property
    def dims(self) -> int:
        return int(self.manifest["image"]["dims"])

    def index(self, split: Split | str) -> np.ndarray:
        """Row positions of the labelled cases of ``split``, in export order."""
        mask = (self.cases["split"] == str(split)).to_numpy() & ~np.isnan(self.labels)
        return np.flatnonzero(mask)

    def presence(self, modality: PeerModality) -> np.ndarray:
        """``[N]`` bool: whether each case has ``modality``."""
        return self.cases[f"has_{modality.value}"].to_numpy(dtype=bool)

    def check_scored_like(self, training: PeerExport) -> None:
        """Raise :class:`ExportError` unless this export is a further test cohort encoded as ``training``
        (written with ``export.py --like`` of it), so a model fitted on ``training`` can score it."""
        like = self.manifest.get("like") or {}
        if like.get("key") != training.manifest["key"]:
            raise ExportError(
                f"{self.directory} was not exported like {training.directory}; write it with "
                f"`python -m benchmarks.peers.export COHORT {self.directory} --like {training.directory}`"
            )

    # ---- modalities -----------------------------------------------------------------------------------
    @property
    def continuous_columns(self) -> list[str]:
        return list(self.manifest["tabular"]["continuous"])

    @property
    def category_columns(self) -> list[str]:
        return list(self.manifest["tabular"]["categories"])

    def tabular(self) -> pd.DataFrame:
        """``[N, F]`` float frame: continuous columns (NaN = missing), then 0/1 category columns."""
        if "tabular" not in self._cache:
            frame = pd.read_csv(self.directory / ExportFile.TABULAR, dtype={"case_id": str})
            if frame["case_id"].tolist() != self.case_ids:
                raise ExportError(f"{ExportFile.TABULAR} rows are not in the order of {ExportFile.CASES}")
            self._cache["tabular"] = frame.drop(columns="case_id").astype(float)
        return self._cache["tabular"].copy()  # type: ignore[union-attr]

    def notes(self) -> list[str]:
        if "notes" not in self._cache:
            texts = {}
            with (self.directory / ExportFile.NOTES).open(encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    texts[row["case_id"]] = row["text"]
            self._cache["notes"] = [texts[c] for c in self.case_ids]
        return list(self._cache["notes"])  # type: ignore[arg-type]

    def _array(self, name: ExportFile) -> np.ndarray:
        path = self.directory / name
        if not path.is_file():
            raise ExportError(f"{path} is missing from the export")
        return np.load(path, allow_pickle=False)

    def image(self, dims: int = 2) -> np.ndarray:
        """``[N, H, W]`` (``dims=2``) or ``[N, D, H, W]`` (``dims=3``, 3D cohorts only), float32 in [0, 1]."""
        if dims == 3 and self.dims != 3:
            raise ExportError("this export holds 2D images only")
        return self._array(ExportFile.IMAGE_3D if dims == 3 else ExportFile.IMAGE_2D)

    def minilm(self) -> tuple[np.ndarray, np.ndarray]:
        """``([N, 384], [384])``: note embeddings and the embedding of the empty note."""
        return self._array(ExportFile.MINILM), self._array(ExportFile.MINILM_EMPTY)

    def image_stats(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``([N, K], [K], names)``: image statistics, those of a blank image, and their names."""
        return (
            self._array(ExportFile.IMAGE_STATS),
            self._array(ExportFile.IMAGE_STATS_BLANK),
            list(self.manifest["image_stats"]),
        )


# --------------------------------------------------------------------------------------------------------
# making a modality missing


def blank_tabular(frame: pd.DataFrame, continuous: list[str]) -> pd.DataFrame:
    """The frame with every value missing: continuous columns NaN, category columns 0."""
    out = frame.copy()
    for column in out.columns:
        out[column] = np.nan if column in continuous else 0.0
    return out


def decode_categories(frame: pd.DataFrame, category_columns: list[str]) -> pd.DataFrame:
    """Turn the 0/1 ``name=value`` columns back into one string column per ``name`` ("missing" when none
    is set), for peers that embed categorical columns themselves."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for column in category_columns:
        name, _, value = column.partition("=")
        groups.setdefault(name, []).append((column, value))
    out = pd.DataFrame(index=frame.index)
    for name, members in groups.items():
        decoded = pd.Series("missing", index=frame.index, dtype=object)
        for column, value in members:
            decoded[frame[column].to_numpy() > 0.5] = value
        out[name] = decoded
    return out


@dataclass
class TabularDesign:
    """Mean imputation plus missing indicators, then standardisation, fitted on the training rows.

    ``transform`` returns ``[N, C + K]`` float32: the ``C`` columns standardised (a missing value becomes the
    training mean, i.e. 0) followed by ``K`` indicators, one per continuous column, 1 where it was missing.
    """

    continuous: list[str]
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    columns_: list[str] | None = None

    def fit(self, frame: pd.DataFrame) -> TabularDesign:
        values = frame.to_numpy(dtype=float)
        values = np.where(np.isfinite(values), values, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: handled below
            mean = np.nanmean(values, axis=0)
            scale = np.nanstd(values, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        self.mean_, self.scale_, self.columns_ = mean, scale, list(frame.columns)
        return self

    @property
    def width(self) -> int:
        assert self.columns_ is not None, "fit first"
        return len(self.columns_) + len(self.continuous)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if self.mean_ is None or self.scale_ is None or self.columns_ is None:
            raise RuntimeError("TabularDesign.transform called before fit")
        if list(frame.columns) != self.columns_:
            raise ValueError("the frame's columns differ from those the design was fitted on")
        values = frame.to_numpy(dtype=float)
        missing = ~np.isfinite(values)
        filled = np.where(missing, self.mean_, values)
        standard = (filled - self.mean_) / self.scale_
        position = [self.columns_.index(c) for c in self.continuous]
        indicators = missing[:, position].astype(float)
        return np.concatenate([standard, indicators], axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# adapter plumbing


def adapter_arguments(description: str) -> argparse.ArgumentParser:
    """The command line every adapter accepts (plus its own options)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--export", type=Path, required=True, help="peer export directory")
    parser.add_argument("--out", type=Path, required=True, help="where predictions.csv and result.json go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30, help="epoch budget of neural models")
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience (epochs)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: the library default)")
    return parser


def add_extra_export_argument(parser: argparse.ArgumentParser) -> None:
    """``--extra-export DIR`` (repeatable), for adapters that also score further test cohorts."""
    parser.add_argument(
        "--extra-export",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="export of a further test cohort (export.py --like the training export): every case of it is "
        "scored too, into predictions_<DIR name>.csv",
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def predictions_frame(
    case_ids: list[str], labels: np.ndarray, probabilities: Mapping[PeerModality | None, np.ndarray]
) -> pd.DataFrame:
    """The rows of ``predictions.csv``: ``case_id, label`` and one probability column per entry of
    ``probabilities`` (``None``: every modality, required; a modality: with it removed)."""
    if None not in probabilities:
        raise ValueError("probabilities must include the prediction with every modality (key None)")
    n = len(case_ids)
    frame = pd.DataFrame({"case_id": case_ids, "label": np.asarray(labels, dtype=float)})
    for removed, values in probabilities.items():
        values = np.asarray(values, dtype=float).reshape(-1)
        if values.shape[0] != n:
            raise ValueError(f"{probability_column(removed)}: {values.shape[0]} values for {n} cases")
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
            raise ValueError(f"{probability_column(removed)}: probabilities must be finite and in [0, 1]")
        frame[probability_column(removed)] = values
    return frame


def write_extra_predictions(
    out: Path,
    extra: PeerExport,
    case_rows: np.ndarray,
    probabilities: Mapping[PeerModality | None, np.ndarray],
) -> Path:
    """Write the predictions on the further test cohort ``extra`` (its rows ``case_rows``) beside
    ``predictions.csv``, in the same columns; returns the file."""
    frame = predictions_frame([extra.case_ids[i] for i in case_rows], extra.labels[case_rows], probabilities)
    out.mkdir(parents=True, exist_ok=True)
    path = out / extra_predictions_file(extra.directory)
    frame.to_csv(path, index=False)
    return path


def write_outputs(
    out: Path,
    case_ids: list[str],
    labels: np.ndarray,
    probabilities: Mapping[PeerModality | None, np.ndarray],
    info: dict,
) -> None:
    """Write ``predictions.csv`` (one row per test case) and ``result.json`` (timings, inputs, notes).

    ``probabilities`` maps ``None`` (all modalities) and each removed modality the peer can take to the
    test-split probabilities ``[n]``. ``info`` must say what the peer was given (``inputs``: one line per
    modality) and may hold ``fit_seconds``, ``epochs``, ``seconds_per_epoch``, ``predict_seconds_per_case``,
    ``parameters`` and free ``notes``.
    """
    frame = predictions_frame(case_ids, labels, probabilities)
    if "inputs" not in info:
        raise ValueError("info must say what the peer was given ('inputs')")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / OutputFile.PREDICTIONS, index=False)
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in info.items()}
    clean.setdefault("adapter_peak_mib", peak_rss_mib())
    (out / OutputFile.RESULT).write_text(json.dumps(clean, indent=1), encoding="utf-8")
