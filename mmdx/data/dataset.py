"""From a validated cohort to model-ready samples.

Preprocessing is *fitted* on the training split (the image plan, the tabular normaliser, the categorical
vocabularies and the note tokenizer) and saved with the model, so prediction applies exactly what training
learned.

A sample is a dict keyed by :class:`mmdx.keys.Keys`:

* ``image``: ``[1, H, W]`` or ``[1, D, H, W]`` float32 in [0, 1] -- intensities normalised by modality,
  oriented to RAS, resampled to the plan's spacing (mm), padded/cropped to the plan's shape
  (:mod:`mmdx.data.plan`);
* ``tabular`` / ``tabular_missing``: ``[F]`` normalised canonical values and missingness indicators;
  ``categorical``: ``[C]`` int64 indices (0 = unknown);
* ``text_ids`` / ``text_mask``: ``[T]`` token ids of the case's notes joined in time order;
* ``presence``: ``[3]`` bool, one per modality (image, tabular, text);
* ``label``: float (NaN when unlabelled), ``case_id``.

Only images are loaded per sample; everything else is computed once per cohort into arrays
(:class:`CaseTable`). Decoded images go through :class:`ImageCache` so that DICOM is decoded once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer

from mmdx.config import Config, ImageConfig
from mmdx.data.intensity import normalise
from mmdx.data.plan import (
    CohortImagePlan,
    ImagePlan,
    PlanError,
    centre_slice,
    plan_cohort_images,
    spatial_affine,
)
from mmdx.data.tabular import HOURS_SINCE, TabularNormaliser, aggregate_latest, hours_since_latest
from mmdx.data.text import encode_notes, train_note_tokenizer
from mmdx.data.validation import ValidatedCohort
from mmdx.errors import ConfigError, MmdxError
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.workers import ignore_ctrl_c

CACHE_VERSION = 3
TOKENIZER_FILE = "tokenizer.json"


# ---------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------
class ImageGridError(MmdxError):
    """A preprocessed image whose shape is not the plan's grid; names the case so it can be fixed."""

    def __init__(self, case_id: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
        super().__init__(
            f"case {case_id}: its image was preprocessed to shape {list(shape)} but the model's grid is "
            f"{list(expected)}; run 'mmdx validate COHORT --config CONFIG' to see which images the "
            "preprocessing plan cannot take"
        )
        self.case_id = case_id


def as_plan(settings: ImagePlan | ImageConfig) -> ImagePlan:
    """An :class:`ImagePlan` from a plan, or from an image config that fixes every setting."""
    return settings if isinstance(settings, ImagePlan) else ImagePlan.from_config(settings)


def model_grid(affine: np.ndarray, shape: tuple[int, ...], plan: ImagePlan | ImageConfig) -> np.ndarray:
    """The affine of the model's voxel grid for an image with voxel->RAS ``affine`` and array ``shape``.

    The grid is axis-aligned in RAS (in 2D: in the image's plane, see :func:`mmdx.data.plan.plane_axes`),
    centred on the image's centre, ``plan.shape`` voxels of ``plan.spacing`` mm -- or, without a spacing,
    stretched so its first and last voxel centres meet the image's bounding box. Returns a
    ``[dims+1, dims+1]`` affine.
    """
    plan = as_plan(plan)
    dims = plan.dims
    spatial = spatial_affine(np.asarray(affine, dtype=np.float64), dims)
    n = np.asarray(shape[:dims], dtype=np.float64)
    centre = spatial @ np.append((n - 1) / 2, 1.0)
    out = np.asarray(plan.shape, dtype=np.float64)
    if plan.spacing is not None:
        spacing = np.asarray(plan.spacing, dtype=np.float64)
    else:
        corners = np.array(np.meshgrid(*[[0.0, m - 1] for m in n], indexing="ij")).reshape(dims, -1)
        world = spatial[:dims, :dims] @ corners + spatial[:dims, dims : dims + 1]
        spacing = (world.max(axis=1) - world.min(axis=1)) / np.maximum(out - 1, 1)
        spacing[spacing <= 0] = 1.0
    grid = np.eye(dims + 1)
    grid[:dims, :dims] = np.diag(spacing)
    grid[:dims, dims] = centre[:dims] - spacing * (out - 1) / 2
    return grid


def _fit_dims(array: np.ndarray, affine: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The image as the plan's ``dims`` need it: a single-slice volume as 2D, a volume's centre slice for a
    2D plan. A 2D image under a 3D plan cannot be used (validation drops it with IMAGE_DIMS_DROPPED)."""
    if array.ndim == 3 and dims == 2:
        if array.shape[2] == 1:
            return array[..., 0], affine
        return centre_slice(array, affine)
    if dims == 3 and (array.ndim == 2 or array.shape[2] == 1):
        raise PlanError(
            f"a 2D image (shape {list(array.shape)}) cannot be put on a 3D grid; validation drops such "
            "images (IMAGE_DIMS_DROPPED)"
        )
    return array, affine


def resample_to_grid(
    values: np.ndarray, affine: np.ndarray, plan: ImagePlan | ImageConfig, mode: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """One resampling (MONAI's ``SpatialResample``, zeros outside the image) of ``values`` onto
    :func:`model_grid`. Returns ``([*plan.shape] float32, grid affine [dims+1, dims+1])``."""
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    plan = as_plan(plan)
    values, affine = _fit_dims(
        np.asarray(values, dtype=np.float32), np.asarray(affine, dtype=np.float64), plan.dims
    )
    spatial = spatial_affine(affine, plan.dims)
    grid = model_grid(affine, values.shape, plan)
    tensor = MetaTensor(torch.from_numpy(np.ascontiguousarray(values))[None], affine=torch.as_tensor(spatial))
    resampled = SpatialResample(mode=mode, padding_mode="zeros")(
        tensor, dst_affine=torch.as_tensor(grid), spatial_size=tuple(plan.shape)
    )
    return np.asarray(resampled.as_tensor(), dtype=np.float32)[0], grid


def preprocess_volume(
    array: np.ndarray,
    affine: np.ndarray,
    plan: ImagePlan | ImageConfig,
    is_mask: bool = False,
    modality: str | None = None,
    photometric: str | None = None,
):
    """Apply the preprocessing plan to one image (or, with ``is_mask``, to a label mask).

    ``array``: ``[I, J]`` or ``[I, J, K]`` in physical units (or mask values); ``affine``: 4x4 voxel -> RAS
    mm; ``modality``: the DICOM Modality (or the cohort's declared one) choosing the intensity normalisation
    (:meth:`ImagePlan.spec_for`); ``photometric``: MONOCHROME1 images are inverted by percentile scaling.
    The values are normalised to [0, 1] (:func:`mmdx.data.intensity.normalise`), then one resampling
    (bilinear, or nearest for masks) puts the image on :func:`model_grid` -- oriented to RAS, at the
    plan's spacing, cropped or padded (with 0, the darkest value) to the plan's shape. A volume under a 2D
    plan contributes its centre slice. Returns ``(image [1, *shape] float32, affine of the output grid
    [dims+1, dims+1])``.
    """
    plan = as_plan(plan)
    array, affine = _fit_dims(np.asarray(array), np.asarray(affine, dtype=np.float64), plan.dims)
    values = np.asarray(array, dtype=np.float32)
    if not is_mask:
        values = normalise(values, plan.spec_for(modality), photometric)
    resampled, grid = resample_to_grid(values, affine, plan, mode="nearest" if is_mask else "bilinear")
    return resampled[None], grid


def default_cache_dir() -> Path:
    return Path(os.environ.get("MMDX_CACHE_DIR") or Path.home() / ".cache" / "mmdx") / "images"


class ImageCache:
    """Preprocessed images on disk (``.npz`` without pickle), optionally mirrored in memory.

    The key hashes the image file(s) (path, size, modification time), the preprocessing plan and the
    cohort's declared modality (used for images without a DICOM Modality), so changing the plan -- or
    touching the file -- yields a fresh entry.
    """

    def __init__(
        self,
        plan: ImagePlan | ImageConfig,
        mode: str = "memory",
        directory: str | Path | None = None,
        declared_modality: str | None = None,
    ) -> None:
        self.plan = as_plan(plan)
        self.mode = mode
        self.directory = Path(directory) if directory else default_cache_dir()
        self.declared_modality = declared_modality
        self._memory: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.hits = 0
        self.misses = 0
        if mode != "none":
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def config(self) -> ImagePlan:
        """The plan (the name callers used before plans existed)."""
        return self.plan

    def key(self, path: str | Path, is_mask: bool = False) -> str:
        path = Path(path)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        settings = [self.plan.to_dict(), self.declared_modality]
        blob = json.dumps([CACHE_VERSION, str(path.resolve()), stamp, settings, is_mask], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def _compute(self, path: str | Path, is_mask: bool) -> tuple[np.ndarray, np.ndarray]:
        from mmdx.data.imaging import read_image

        volume = read_image(path)
        modality = volume.meta.get("modality") or self.declared_modality
        return preprocess_volume(
            volume.array,
            volume.affine,
            self.plan,
            is_mask,
            modality=modality,
            photometric=volume.meta.get("photometric_interpretation"),
        )

    def load(self, path: str | Path, is_mask: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(image [1, *shape] float32, output affine)`` for an image file or DICOM folder."""
        if self.mode == "none":
            return self._compute(path, is_mask)
        key = self.key(path, is_mask)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        file = self._file(key)
        entry = None
        if file.is_file():
            try:
                with np.load(file, allow_pickle=False) as data:
                    entry = (data["image"], data["affine"])
                self.hits += 1
            except (OSError, ValueError, KeyError):
                entry = None  # a damaged cache file is rebuilt
        if entry is None:
            self.misses += 1
            entry = self._compute(path, is_mask)
            file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = file.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, image=entry[0], affine=entry[1])
            os.replace(tmp, file)
        if self.mode == "memory":
            self._memory[key] = entry
        return entry

    def warm(self, paths: list[str], workers: int = 1, progress=None) -> int:
        """Decode and cache every image not cached yet, with ``workers`` processes; returns how many were new.

        Training calls this once before the first epoch, so no epoch waits on DICOM decoding.
        """
        if self.mode == "none":
            return 0
        todo = sorted({p for p in paths if p and not self._file(self.key(p)).is_file()})
        if workers > 1 and len(todo) > 8:
            from concurrent.futures import ProcessPoolExecutor

            settings = (self.plan.to_dict(), str(self.directory), self.declared_modality)
            with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread_worker) as pool:
                for done, _ in enumerate(pool.map(_warm_one, [(p, *settings) for p in todo], chunksize=4), 1):
                    if progress:
                        progress(done, len(todo))
        else:
            for done, path in enumerate(todo, 1):
                self.load(path)
                if progress:
                    progress(done, len(todo))
        if self.mode == "memory":
            for path in paths:
                if path:
                    self.load(path)
        return len(todo)


def _one_thread_worker() -> None:
    """Decode with one torch thread: a forked worker inherits the parent's OpenMP thread pool, and when the
    parent already ran torch multi-threaded (training, a dashboard test) the child's first parallel op
    can hang; one thread runs inline. The workers are processes, so nothing is lost. Ctrl+C is left to the
    parent (:func:`mmdx.workers.ignore_ctrl_c`)."""
    torch.set_num_threads(1)
    ignore_ctrl_c()


def _warm_one(args: tuple[str, dict, str, str | None]) -> None:
    path, plan, directory, declared = args
    ImageCache(ImagePlan.from_dict(plan), mode="disk", directory=directory, declared_modality=declared).load(
        path
    )


# ---------------------------------------------------------------------------------------------------------
# Fitted preprocessing
# ---------------------------------------------------------------------------------------------------------
#: ``schema_version`` of ``preprocessing.json``: 1 before image plans existed, 2 with the plan, 3 when the
#: notes' negations are marked (written only then, so that an mmdx that cannot mark them refuses the bundle in
#: one line instead of reading the notes unmarked; every other bundle stays readable by version-2 readers).
PREPROCESSING_SCHEMA_VERSION = 3
_SCHEMA_WITHOUT_NEGATION = 2


@dataclass
class Preprocessing:
    """Everything learned from the training split and needed to turn a case into tensors.

    Saved as ``preprocessing.json`` (plus the tokenizer file) in the model bundle. ``image`` is the image
    plan (:meth:`ImagePlan.to_dict`) and ``image_fingerprint`` the training images it was derived from;
    a bundle written before plans existed holds fixed image settings instead, read as a legacy plan.
    """

    modalities: list[str]
    image: dict | None
    features: list[str]
    units: dict[str, str]
    numeric_columns: list[str]
    normaliser: TabularNormaliser
    text_max_length: int
    tokenizer: Tokenizer | None
    time_since_measurement: bool = False
    image_fingerprint: dict | None = None
    text_negation: bool = False

    @property
    def image_plan(self) -> ImagePlan | None:
        return ImagePlan.from_dict(self.image) if self.image else None

    @property
    def image_config(self) -> ImagePlan | None:
        """The image plan (dims, shape, spacing, window, intensity per modality); the name predates plans."""
        return self.image_plan

    @property
    def time_columns(self) -> list[str]:
        """The hours since each feature's latest value (``<feature>.hours_since``), when the config asks."""
        return [f + HOURS_SINCE for f in self.features] if self.time_since_measurement else []

    @property
    def tabular_columns(self) -> list[str]:
        """Names of the ``tabular`` tensor's columns: catalogue features, the hours since each was measured
        (with ``time_since_measurement``), then numeric case columns."""
        return self.features + self.time_columns + self.numeric_columns

    def to_dict(self) -> dict:
        return {
            "schema_version": PREPROCESSING_SCHEMA_VERSION
            if self.text_negation
            else _SCHEMA_WITHOUT_NEGATION,
            "modalities": self.modalities,
            "image": self.image,
            "image_fingerprint": self.image_fingerprint,
            "features": self.features,
            "units": self.units,
            "numeric_columns": self.numeric_columns,
            "time_since_measurement": self.time_since_measurement,
            "normaliser": self.normaliser.to_dict(),
            "text": {
                "max_length": self.text_max_length,
                "tokenizer": TOKENIZER_FILE if self.tokenizer else None,
                "negation": self.text_negation,
            },
        }

    def save(self, directory: Path) -> None:
        (directory / "preprocessing.json").write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        if self.tokenizer is not None:
            self.tokenizer.save(str(directory / TOKENIZER_FILE))

    @classmethod
    def load(cls, directory: Path) -> Preprocessing:
        """Read ``preprocessing.json``; schema version 1 (fixed image settings) and 2 (an image plan).

        Raises :class:`~mmdx.errors.BundleError` in one line for a newer schema version.
        """
        from mmdx.errors import BundleError

        state = json.loads((directory / "preprocessing.json").read_text(encoding="utf-8"))
        version = state.get("schema_version", 1)
        if not isinstance(version, int) or version > PREPROCESSING_SCHEMA_VERSION:
            raise BundleError(
                f"{directory / 'preprocessing.json'} has schema version {version!r}, written by a newer mmdx; "
                f"this mmdx reads versions 1 to {PREPROCESSING_SCHEMA_VERSION}: upgrade mmdx, or retrain"
            )
        tokenizer = None
        if state["text"]["tokenizer"]:
            tokenizer = Tokenizer.from_file(str(directory / state["text"]["tokenizer"]))
        image = state["image"]
        if image:
            image = ImagePlan.from_dict(image).to_dict()  # a version-1 bundle's fixed settings, as a plan
        return cls(
            modalities=list(state["modalities"]),
            image=image,
            features=list(state["features"]),
            units=dict(state["units"]),
            numeric_columns=list(state["numeric_columns"]),
            normaliser=TabularNormaliser.from_dict(state["normaliser"]),
            text_max_length=int(state["text"]["max_length"]),
            tokenizer=tokenizer,
            time_since_measurement=bool(state.get("time_since_measurement", False)),
            image_fingerprint=state.get("image_fingerprint"),
            text_negation=bool(state["text"].get("negation", False)),
        )


def model_modalities(config: Config) -> list[str]:
    return [m.value for m in MODALITIES if getattr(config.model, m.value) is not None]


def plan_training_images(
    cohort: ValidatedCohort, config: Config, previous: Preprocessing | None = None
) -> CohortImagePlan | None:
    """The image plan of a training run, applied to ``cohort`` (``None`` when the model reads no image).

    Fitted to the training split under ``config.data.image``; a resumed run reuses ``previous``'s plan so
    that it sees exactly the inputs the interrupted run saw. Raises :class:`~mmdx.data.plan.PlanError`
    before any training when config and images cannot be reconciled.
    """
    if Modality.IMAGE.value not in model_modalities(config):
        return None
    plan = previous.image_plan if previous is not None else None
    return plan_cohort_images(cohort, config.data.image, plan=plan)


def fit_preprocessing(
    cohort: ValidatedCohort,
    config: Config,
    pretrained_tokenizer: str | Path | None = None,
    images: CohortImagePlan | None = None,
) -> Preprocessing:
    """Fit the normaliser, vocabularies, tokenizer and image plan on the cohort's training split.

    ``images``: the image plan already applied to ``cohort`` (:func:`mmdx.data.plan.plan_cohort_images`,
    which training calls first so that its warnings reach the validation report); fitted here otherwise.
    """
    train = cohort.split("train")
    if train.empty:
        raise ValueError(f"cohort {cohort.name} has no usable training case; check the split column")
    modalities = model_modalities(config)
    if Modality.IMAGE.value in modalities and images is None:
        images = plan_cohort_images(cohort, config.data.image)
    tab = config.data.tabular
    features = cohort.catalogue.keys if tab.features == "all" else list(tab.features)
    unknown = [f for f in features if f not in cohort.catalogue.keys]
    if unknown:
        raise ValueError(f"data.tabular.features: {', '.join(unknown)} not in the feature catalogue")
    numeric_columns = [c for c in tab.numeric_columns if c in cohort.cases.columns]
    categorical_columns = [c for c in tab.categorical_columns if c in cohort.cases.columns]
    time_since = tab.time_since_measurement
    numeric = _numeric_frame(cohort, train["case_id"].tolist(), features, numeric_columns, time_since)
    offsets = {f: cohort.catalogue[f].log_offset for f in features}
    log_offsets = {f: offset for f, offset in offsets.items() if offset is not None}
    if time_since:  # hours are right-skewed: one hour's offset before the logarithm
        log_offsets.update({f + HOURS_SINCE: 1.0 for f in features})
    normaliser = TabularNormaliser(clip=tab.clip, log_offsets=log_offsets).fit(
        numeric, train.set_index("case_id")[categorical_columns]
    )
    tokenizer = None
    negation = Modality.TEXT.value in modalities and config.data.text.negation
    if Modality.TEXT.value in modalities:
        if pretrained_tokenizer is not None:
            if negation:
                raise ConfigError(
                    f"data.text.negation: the text encoder {config.model.text.name!r} is pretrained and reads "
                    "negation from its own tokens; set data.text.negation: false (negation marking is for "
                    "text_cnn and transformer)"
                )
            tokenizer = Tokenizer.from_file(str(pretrained_tokenizer))
        else:
            texts = [cohort.notes[c] for c in train["case_id"] if c in cohort.notes]
            tokenizer = train_note_tokenizer(
                texts, config.data.text.vocab_size, config.data.text.min_frequency
            )
    with_image = Modality.IMAGE.value in modalities and images is not None
    return Preprocessing(
        modalities=modalities,
        image=images.plan.to_dict() if with_image else None,
        features=features,
        units={f: cohort.catalogue[f].unit for f in features},
        numeric_columns=numeric_columns,
        normaliser=normaliser,
        text_max_length=config.data.text.max_length,
        tokenizer=tokenizer,
        time_since_measurement=time_since,
        image_fingerprint=images.fingerprint.to_dict() if with_image and images.fingerprint else None,
        text_negation=negation,
    )


def _numeric_frame(
    cohort: ValidatedCohort,
    case_ids: list[str],
    features: list[str],
    columns: list[str],
    time_since: bool = False,
):
    wide = aggregate_latest(cohort.observations, case_ids, features)
    if time_since:
        cases = cohort.cases.set_index("case_id")
        index_time = cases["index_time"] if "index_time" in cases.columns else pd.Series(dtype=object)
        reference = pd.to_datetime(index_time, utc=True, errors="coerce", format="ISO8601")
        wide = pd.concat(
            [wide, hours_since_latest(cohort.observations, reference, case_ids, features)], axis=1
        )
    if columns:
        extra = cohort.cases.set_index("case_id").loc[case_ids, columns].apply(pd.to_numeric, errors="coerce")
        wide = pd.concat([wide, extra.astype(float)], axis=1)
    return wide


@dataclass
class CaseTable:
    """Non-image inputs of a list of cases as arrays (computed once per cohort and split).

    ``canonical``: ``[N, F]`` the raw canonical values (NaN = missing), kept for explanations and the UI.
    """

    case_ids: list[str]
    labels: np.ndarray  # [N] float32, NaN = unlabelled
    image_paths: list[str | None]
    tabular: np.ndarray  # [N, F] float32
    tabular_missing: np.ndarray  # [N, F] float32
    categorical: np.ndarray  # [N, C] int64
    canonical: np.ndarray  # [N, F] float64
    text_ids: np.ndarray  # [N, T] int64
    text_mask: np.ndarray  # [N, T] int64
    text_offsets: np.ndarray  # [N, T, 2] int64
    texts: list[str | None]
    presence: np.ndarray  # [N, 3] bool

    def __len__(self) -> int:
        return len(self.case_ids)

    def subset(self, index: np.ndarray | list[int]) -> CaseTable:
        index = np.asarray(index, dtype=int)
        return CaseTable(
            case_ids=[self.case_ids[i] for i in index],
            labels=self.labels[index],
            image_paths=[self.image_paths[i] for i in index],
            tabular=self.tabular[index],
            tabular_missing=self.tabular_missing[index],
            categorical=self.categorical[index],
            canonical=self.canonical[index],
            text_ids=self.text_ids[index],
            text_mask=self.text_mask[index],
            text_offsets=self.text_offsets[index],
            texts=[self.texts[i] for i in index],
            presence=self.presence[index],
        )


def build_case_table(
    cohort: ValidatedCohort, prep: Preprocessing, case_ids: list[str] | None = None
) -> CaseTable:
    """Arrays for ``case_ids`` (default: every usable case of the cohort, in cohort order)."""
    cases = cohort.cases.set_index("case_id")
    case_ids = list(cases.index) if case_ids is None else list(case_ids)
    cases = cases.loc[case_ids]
    numeric = _numeric_frame(
        cohort, case_ids, prep.features, prep.numeric_columns, prep.time_since_measurement
    )
    values, missing = prep.normaliser.transform_numeric(numeric)
    categorical = prep.normaliser.transform_categorical(cases.reset_index())
    texts = [cohort.notes.get(c) for c in case_ids]
    if prep.tokenizer is not None:
        encoded = encode_notes(
            prep.tokenizer, [t or "" for t in texts], prep.text_max_length, negation=prep.text_negation
        )
        ids, mask, offsets = encoded.ids, encoded.mask, encoded.offsets
    else:
        ids = np.zeros((len(case_ids), 1), dtype=np.int64)
        mask = np.zeros_like(ids)
        offsets = np.zeros((len(case_ids), 1, 2), dtype=np.int64)
    has = {m: cases[f"has_{m.value}"].to_numpy(dtype=bool) for m in MODALITIES}
    presence = np.stack([has[m] & (m.value in prep.modalities) for m in MODALITIES], axis=1)
    image_paths = [p if isinstance(p, str) else None for p in cases["image_path"].tolist()]
    return CaseTable(
        case_ids=case_ids,
        labels=cases["label"].to_numpy(dtype=np.float32),
        image_paths=image_paths,
        tabular=values,
        tabular_missing=missing,
        categorical=categorical,
        canonical=numeric.to_numpy(dtype=np.float64),
        text_ids=ids,
        text_mask=mask,
        text_offsets=offsets,
        texts=texts,
        presence=presence,
    )


class MultimodalDataset(torch.utils.data.Dataset):
    """Samples of a :class:`CaseTable`; images are read through an :class:`ImageCache`."""

    def __init__(self, table: CaseTable, prep: Preprocessing, cache: ImageCache | None) -> None:
        self.table = table
        self.prep = prep
        self.cache = cache
        self.image_config = prep.image_config
        self.with_image = self.image_config is not None and cache is not None

    def __len__(self) -> int:
        return len(self.table)

    def image(self, index: int) -> torch.Tensor:
        assert self.image_config is not None and self.cache is not None
        path = self.table.image_paths[index]
        if path is None or not self.table.presence[index, 0]:
            return torch.zeros((1, *self.image_config.shape), dtype=torch.float32)
        array, _ = self.cache.load(path)
        expected = (1, *self.image_config.shape)
        if tuple(array.shape) != expected:
            # nothing may reach collate with inconsistent shapes: name the case instead
            raise ImageGridError(self.table.case_ids[index], tuple(array.shape), expected)
        return torch.from_numpy(np.array(array, dtype=np.float32, copy=True))

    def __getitem__(self, index: int) -> dict:
        t = self.table
        sample = {
            Keys.CASE_ID: t.case_ids[index],
            Keys.LABEL: torch.tensor(t.labels[index], dtype=torch.float32),
            Keys.TABULAR: torch.from_numpy(t.tabular[index]),
            Keys.TABULAR_MISSING: torch.from_numpy(t.tabular_missing[index]),
            Keys.CATEGORICAL: torch.from_numpy(t.categorical[index]),
            Keys.TEXT_IDS: torch.from_numpy(t.text_ids[index]),
            Keys.TEXT_MASK: torch.from_numpy(t.text_mask[index]),
            Keys.PRESENCE: torch.from_numpy(t.presence[index]),
        }
        if self.with_image:
            sample[Keys.IMAGE] = self.image(index)
        return sample


def collate(samples: list[dict]) -> dict:
    """Stack tensors, keep strings as lists."""
    out: dict = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out
