"""Experiment configs: YAML files read in one place into validated, typed objects.

A config file may start with ``base: other.yaml`` (a path relative to the file); its keys are merged over
the base, recursively -- except that a component given another ``name`` (an encoder or fusion) replaces
the base's entry instead of inheriting its arguments. Command-line overrides
(``--set model.fusion.name=concat``) are applied last, with YAML typing of the value; one that switches a
component's ``name`` likewise drops the previous component's arguments (give new arguments after it).
Unknown or misspelled keys fail with their full path and a suggestion:
``model.fusion.hiden_dim: unknown key; did you mean 'dim'?``. Configs are data: no expressions.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmdx.errors import ConfigError, did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageConfig(_Strict):
    """Image preprocessing, fitted to the cohort unless given.

    ``auto`` values are derived at training from the fingerprint of the training images (see
    :mod:`mmdx.data.plan`): ``dims`` the dimensionality most training images have; ``spacing`` and
    ``shape`` so that the median field of view fills the grid within ``voxel_budget_2d`` /
    ``voxel_budget_3d`` voxels; ``intensity`` by modality (CT: the HU ``window``; MR: a per-image robust
    z-score; CR/DX: per-image percentile scaling with MONOCHROME1 inverted; see
    :mod:`mmdx.data.intensity`). Explicit values win: ``intensity: window`` applies the HU ``window`` to
    every image (the behaviour before plans existed), ``spacing: null`` stretches each image to the grid.
    Every image is oriented to RAS and resampled once onto the grid (mm).
    """

    dims: Literal[2, 3, "auto"] = "auto"
    shape: list[int] | Literal["auto"] = "auto"
    spacing: list[float] | Literal["auto"] | None = "auto"
    intensity: Literal["auto", "window", "zscore", "percentile"] = "auto"
    window: tuple[float, float] = (-1000.0, 400.0)
    voxel_budget_2d: int = Field(default=1024, ge=64)
    voxel_budget_3d: int = Field(default=32768, ge=512)

    @model_validator(mode="after")
    def _check(self) -> ImageConfig:
        dims = self.declared_dims
        if self.shape != "auto":
            if dims is not None and len(self.shape) != dims:
                raise ValueError(f"shape {self.shape} has {len(self.shape)} axes but dims is {self.dims}")
            if len(self.shape) not in (2, 3):
                raise ValueError(f"shape {self.shape} must have 2 or 3 axes")
            if any(s < 8 for s in self.shape):
                raise ValueError(f"shape {self.shape}: every axis must be at least 8 voxels")
        if isinstance(self.spacing, list):
            if any(s <= 0 for s in self.spacing) or (dims is not None and len(self.spacing) != dims):
                what = f"{dims} positive values (mm)" if dims is not None else "positive values (mm)"
                raise ValueError(f"spacing {self.spacing} must have {what}, be auto or null")
            if len(self.spacing) not in (2, 3):
                raise ValueError(f"spacing {self.spacing} must have 2 or 3 values (mm)")
        if self.window[1] <= self.window[0]:
            raise ValueError(f"window {self.window}: the upper HU bound must exceed the lower")
        return self

    @property
    def declared_dims(self) -> int | None:
        """The dimensionality the config fixes: ``dims``, or the length of an explicit shape or spacing."""
        if self.dims != "auto":
            return int(self.dims)
        if self.shape != "auto":
            return len(self.shape)
        if isinstance(self.spacing, list):
            return len(self.spacing)
        return None

    def budget(self, dims: int) -> int:
        """Largest number of voxels of a ``dims``-D grid."""
        return self.voxel_budget_2d if dims == 2 else self.voxel_budget_3d


class TabularConfig(_Strict):
    """Which catalogue features (``all`` or a list of keys), numeric case columns and categorical columns.

    ``time_since_measurement``: also give the model, per feature, the hours from its latest value to the
    case's index time (or, without one, to the case's latest observation) -- how stale each value is.
    Off by default: on the synthetic cohorts the timing carries no label information (see BENCHMARKS.md)."""

    features: Literal["all"] | list[str] = "all"
    numeric_columns: list[str] = Field(default_factory=lambda: ["age"])
    categorical_columns: list[str] = Field(default_factory=lambda: ["sex", "site"])
    clip: float = 8.0
    time_since_measurement: bool = False


class TextConfig(_Strict):
    """Notes are tokenised by a BPE tokenizer trained on the training split's notes (``vocab_size``,
    ``min_frequency``) -- pretrained text encoders bring their own -- and cut to ``max_length`` tokens.

    ``negation``: mark the tokens inside a negation's scope ("no evidence of consolidation", "cough has been
    ruled out"; cues after NegEx, Chapman et al. 2001) so that the text encoder reads a negated finding as
    another input than an affirmed one (each marked token: its own embedding plus one learned negation
    vector). For the encoders trained from scratch (``text_cnn``, ``transformer``); a pretrained encoder reads
    negation from its own tokens. Off by default: on the demo it left the validation AUROC as it was and
    lowered the test AUROC by 0.009 (BENCHMARKS.md, "Notes with the negations marked").
    """

    vocab_size: int = Field(default=3000, ge=100)
    min_frequency: int = Field(default=2, ge=1)
    max_length: int = Field(default=160, ge=8)
    negation: bool = False


class CacheConfig(_Strict):
    """Decoded, preprocessed images are cached so later epochs never decode DICOM again.

    ``disk``: ``.npy`` files under ``dir`` (default ``$MMDX_CACHE_DIR`` or ``~/.cache/mmdx``), keyed by the
    image files and the preprocessing settings; ``memory``: the disk cache plus an in-process copy;
    ``none``: decode every time (for debugging).
    """

    mode: Literal["disk", "memory", "none"] = "memory"
    dir: str | None = None


class LoaderConfig(_Strict):
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    workers: int = Field(default=0, ge=0)


class DataConfig(_Strict):
    cohort: str | None = None
    image: ImageConfig = Field(default_factory=ImageConfig)
    tabular: TabularConfig = Field(default_factory=TabularConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    validate_workers: int = Field(default=1, ge=1)


class ComponentConfig(BaseModel):
    """A registry entry by ``name`` plus its keyword arguments (checked against the builder's signature)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(_Strict):
    image: ComponentConfig | None = None
    tabular: ComponentConfig | None = None
    text: ComponentConfig | None = None
    fusion: ComponentConfig = Field(default_factory=lambda: ComponentConfig(name="gated_attention"))

    @model_validator(mode="after")
    def _at_least_one(self) -> ModelConfig:
        if self.image is None and self.tabular is None and self.text is None:
            raise ValueError("the model needs at least one of image, tabular, text")
        return self


class ThresholdConfig(_Strict):
    """Operating threshold chosen on the validation split: Youden's J, or the lowest sensitivity target."""

    rule: Literal["youden", "sensitivity", "fixed"] = "youden"
    target: float = Field(default=0.9, gt=0, lt=1)
    value: float = Field(default=0.5, gt=0, lt=1)


class StagedConfig(_Strict):
    """The ``staged`` strategy: each encoder first trains alone with its own head, for at most
    ``branch_epochs`` epochs (and ``train.epochs``) and until its own validation AUROC has not improved for ``branch_patience``
    epochs; the fusion then trains on top with the encoders (and their heads) fine-tuned at
    ``finetune_lr_scale`` times ``train.lr``."""

    branch_epochs: int = Field(default=30, ge=1)
    branch_patience: int = Field(default=6, ge=1)
    #: ``true``: an encoder's patience counts only once its own validation AUROC has risen above chance (the
    #: AUROC that scores without signal stay below with 97.5% probability on its validation cases): an
    #: image encoder that finds a small lesion only after several epochs at chance is not stopped before it
    #: starts; one that never leaves chance trains for ``branch_epochs``. ``false``: patience from the start.
    wait_for_signal: bool = True
    finetune_lr_scale: float = Field(default=0.1, ge=0, le=1)


class ModulationConfig(_Strict):
    """The ``ogm_ge`` strategy (on-the-fly gradient modulation with generalisation enhancement): each step,
    an encoder whose own head is more confident on the batch's true labels than the other encoders' heads
    (ratio ``rho > 1``) has its gradient scaled by ``1 - tanh(alpha * rho)`` and Gaussian noise of the
    gradient's own standard deviation added; ``noise: false`` leaves the noise out."""

    alpha: float = Field(default=0.5, gt=0)
    noise: bool = True


class AugmentConfig(_Strict):
    """Random image augmentation of training cases (MONAI dictionary transforms, 2D and 3D): each entry is
    the chance a training image gets that transform. ``affine``: rotation up to ``rotate_degrees``, scaling
    by up to ``scale`` and a shift of up to ``translate`` of the grid; ``elastic``: a smooth random
    deformation; ``intensity``: intensities scaled and shifted by up to ``intensity_range``; ``noise``:
    Gaussian noise of standard deviation up to ``noise_std`` (intensities lie in about [0, 1]). All 0 (off)
    by default: see BENCHMARKS.md."""

    affine: float = Field(default=0.0, ge=0, le=1)
    elastic: float = Field(default=0.0, ge=0, le=1)
    intensity: float = Field(default=0.0, ge=0, le=1)
    noise: float = Field(default=0.0, ge=0, le=1)
    rotate_degrees: float = Field(default=15.0, ge=0, le=180)
    scale: float = Field(default=0.1, ge=0, lt=1)
    translate: float = Field(default=0.1, ge=0, lt=1)
    intensity_range: float = Field(default=0.1, ge=0, lt=1)
    noise_std: float = Field(default=0.05, ge=0)

    @property
    def enabled(self) -> bool:
        return any(p > 0 for p in (self.affine, self.elastic, self.intensity, self.noise))


class ContrastiveConfig(_Strict):
    """Cross-modal contrastive pretraining (``train.pretrain: contrastive``), run before the strategy: a
    small projection head (two-layer MLP to ``projection_dim``) on each paired encoder, and a symmetric
    InfoNCE loss at temperature ``temperature`` between the image and the notes of the same case (with
    ``include_tabular``, also image and values, notes and values), over every training-split case that has
    both modalities of a pair, labelled or not. ``held_out``: the share of those training cases kept aside
    to stop on (their contrastive loss), never the validation split; at most ``epochs`` epochs at learning
    rate ``lr``, stopping after ``patience`` epochs without a lower held-out loss. The encoders keep the
    weights of the best held-out epoch; the projection heads are discarded."""

    epochs: int = Field(default=12, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    temperature: float = Field(default=0.1, gt=0)
    projection_dim: int = Field(default=32, ge=2)
    include_tabular: bool = False
    patience: int = Field(default=3, ge=1)
    held_out: float = Field(default=0.1, gt=0, lt=0.5)


class TrainConfig(_Strict):
    """Optimisation. ``modality_dropout``: chance of hiding each present modality of a training case;
    ``aux_loss_weight``: weight of the loss of one extra head per encoder (0 trains without them);
    ``flip``: chance of mirroring a training image along each spatial axis; ``patience``: epochs
    without a better validation AUROC before stopping (not before ``min_epochs``); ``threads``: PyTorch
    intra-op threads per process (default: half the usable cores, see ``pipelines.train.default_threads``).

    ``strategy``: how the encoders and the fusion are trained, a name of the registry
    ``mmdx.training.strategies.STRATEGIES`` (``joint``: everything together, as before; ``staged``; ``ogm_ge``);
    ``early_stopping``: ``fused`` stops on the fused validation AUROC alone, ``branches`` also waits while
    any encoder's own head still improves its validation AUROC (the best weights are chosen on the fused
    AUROC either way).

    ``pretrain``: what runs before the strategy to warm-start the encoders: ``none`` (the default) or
    ``contrastive``, cross-modal contrastive pretraining on the training split (settings in
    ``contrastive``, see :class:`ContrastiveConfig`). It needs two of the model's encoders to pair: image
    and text, or, with ``contrastive.include_tabular``, either of them with the tabular encoder."""

    epochs: int = Field(default=30, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_epochs: float = Field(default=1.0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    modality_dropout: float = Field(default=0.15, ge=0, lt=1)
    aux_loss_weight: float = Field(default=0.5, ge=0)
    flip: float = Field(default=0.0, ge=0, le=1)
    class_weighting: Literal["balanced", "none"] = "balanced"
    grad_clip: float | None = Field(default=1.0, gt=0)
    patience: int = Field(default=6, ge=1)
    min_epochs: int = Field(default=3, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    deterministic: bool = True
    threads: int | None = Field(default=None, ge=1)
    calibrate: bool = True
    #: ``platt``: a temperature and an offset fitted on the validation split (undoes the shift that
    #: class weighting gives the logits); ``temperature``: the temperature only (what bundles held before the offset existed).
    calibration: Literal["platt", "temperature"] = "platt"
    #: ``development``: Platt's offset is set so that the mean calibrated probability on the validation split
    #: equals the share of positives among all labelled training and validation cases (a class rate from
    #: about six times as many labels as the validation split holds with 70/15/15 splits); ``validation``:
    #: the offset fitted on the validation split alone (bundles before this setting existed). Ignored by
    #: ``temperature``.
    calibration_prevalence: Literal["development", "validation"] = "development"
    #: ``K >= 2``: after training, K more models, each trained without one fold of the training split,
    #: score the fold they left out (``mmdx.training.cross_fit``): a cross-validated AUROC of these settings,
    #: steadier than a small validation split's, in ``training.json`` and the model card. Costs K more
    #: trainings; the run's model, calibration and threshold do not change. ``0``: none.
    cross_validation_folds: int = Field(default=0, ge=0, le=20)
    #: ``K >= 2``: train K models with these settings and the seeds ``seed``, ``seed + 1000``, ...; each is
    #: calibrated on the validation split and the bundle predicts with the mean of their calibrated logits
    #: (``mmdx.models.ensemble``): a better ranking and calibration on new cases for K times the training
    #: time. ``1``: one model.
    ensemble: int = Field(default=1, ge=1, le=20)
    #: How an ensemble's members share the labelled cases. ``shared``: every member trains on the training
    #: split and early-stops and is calibrated on the validation split. ``folds`` (cross-fitting): the
    #: labelled training and validation cases are dealt into K folds stratified by label; member k trains on
    #: the other folds and early-stops and is calibrated on fold k, so the members' calibrations rest on K
    #: disjoint sets that together hold every labelled case instead of on one shared validation split; the
    #: validation metrics, the operating threshold and the cross-validated AUROC come from the out-of-fold
    #: calibrated probabilities (each case scored by the member that did not train on it). Ignored by one
    #: model (``ensemble: 1``).
    ensemble_split: Literal["shared", "folds"] = "shared"
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    strategy: str = "joint"
    early_stopping: Literal["fused", "branches"] = "fused"
    staged: StagedConfig = Field(default_factory=StagedConfig)
    modulation: ModulationConfig = Field(default_factory=ModulationConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    pretrain: Literal["none", "contrastive"] = "none"
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig)

    @property
    def folded_ensemble(self) -> bool:
        """An ensemble whose members train and are calibrated on folds (``ensemble_split: folds``)."""
        return self.ensemble > 1 and self.ensemble_split == "folds"

    @field_validator("cross_validation_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (no cross-validation) or at least 2 folds")
        return value

    @model_validator(mode="after")
    def _ensemble_without_pretraining(self) -> TrainConfig:
        if self.ensemble > 1 and self.pretrain != "none":
            raise ValueError(
                f"ensemble: the members after the first would not be pretrained (pretrain {self.pretrain}); set "
                "train.pretrain=none or train.ensemble=1"
            )
        return self

    @model_validator(mode="after")
    def _ensemble_folds(self) -> TrainConfig:
        if self.folded_ensemble and self.cross_validation_folds:
            raise ValueError(
                "ensemble_split: folds already cross-validates (each case scored by the member that did not "
                "train on it); set train.cross_validation_folds=0"
            )
        return self

    @model_validator(mode="after")
    def _folds_without_pretraining(self) -> TrainConfig:
        if self.cross_validation_folds and self.pretrain != "none":
            raise ValueError(
                "cross_validation_folds: the fold models are not pretrained, so they would not cross-validate "
                f"these settings (pretrain {self.pretrain}); set train.pretrain=none or "
                "train.cross_validation_folds=0"
            )
        return self


class Config(_Strict):
    name: str = "run"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\") or value.startswith("."):
            raise ValueError(
                f"name {value!r} must be a plain folder name (no slashes, not starting with '.')"
            )
        return value

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


# ------------------------------------------------------------------------------------------------------
def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        base_value = out.get(key)
        switched = (
            isinstance(value, dict)
            and isinstance(base_value, dict)
            and value.get("name", base_value.get("name")) != base_value.get("name")
        )
        if isinstance(value, dict) and isinstance(base_value, dict) and not switched:
            out[key] = _merge(base_value, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config_document(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The merged YAML document of a config file (``base:`` chains resolved), before validation."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a mapping, got {type(document).__name__}")
    base = document.pop("base", None)
    if base is None:
        return document
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a path to another YAML file, got {base!r}")
    return _merge(read_config_document(path.parent / base, (*_seen, path)), document)


def apply_overrides(document: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides (value parsed as YAML: numbers, lists, null, true).

    As with ``base:``, a component switched to another ``name`` (``model.tabular.name=ft_transformer``) drops
    the arguments it had for the previous one, except those given by earlier overrides of the same call.
    """
    out = copy.deepcopy(document)
    given: set[tuple[str, ...]] = set()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value, e.g. train.epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        node = out
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                raise ConfigError(f"override {item!r}: '{part}' is a value, not a section")
            node = node[part]
        if len(parts) > 1 and parts[-1] == "name" and node.get("name", value) != value:
            section = tuple(parts[:-1])
            for argument in [k for k in node if k != "name" and (*section, k) not in given]:
                del node[argument]
        node[parts[-1]] = value
        given.add(tuple(parts))
    return out


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the config section at ``loc`` (for suggestions)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = ".".join(str(p) for p in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key{did_you_mean(str(loc[-1]), _fields_at(Config, loc))}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message} (got {error.get('input')!r})")
    return f"invalid config {source}:\n  " + "\n  ".join(lines)


def config_from_dict(document: dict, source: str = "(dict)") -> Config:
    try:
        return Config.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, merge, override and validate a config file."""
    document = apply_overrides(read_config_document(path), overrides or [])
    return config_from_dict(document, source=str(path))
