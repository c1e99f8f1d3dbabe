"""What an explanation needs: the model inputs of a batch of cases, their baselines, and the context that maps
attributions back to the clinician's terms (feature names and units, note text, original image grid).

- :class:`ExplainInputs`: ``B`` cases as model tensors (the keys of :class:`mmdx.keys.Keys`) plus optional
  context: the features' names, units and raw canonical values, the notes and token offsets, the image
  grids. Build it from a collated batch (:meth:`ExplainInputs.from_batch`) or from a cohort prepared for a
  bundle (:func:`cohort_explain_inputs`).
- :class:`Baselines` and :func:`make_baselines`: the reference input that Integrated Gradients integrates
  from, and that occlusion and the deletion curves put in place of what they remove:

  * image: air, the value ``-1000 HU`` takes after the intensity window (0 for the default window
    ``[-1000, 400]``), or a Gaussian-blurred copy of the image (``image="blur"``), which keeps the
    anatomy's low frequencies and asks which *details* mattered;
  * tabular: 0 in normalised units for every numeric feature, i.e. the training median (the normaliser
    is ``(x - median) / scale``), with the missing indicators unchanged: a measured value is compared with
    a typical one, and a missing value (0 already) gets no attribution. Categorical columns are held at
    their values by Integrated Gradients (an index has no straight path); occlusion replaces a column by
    index 0, "unknown";
  * text: the [PAD] token at every real position except the special tokens ([CLS], [SEP], recognised by
    their empty character span), with the attention mask unchanged, so the baseline is a note of the same
    length that says nothing. Baselines hold token *ids*, embedded by whichever model is explained, so
    the same baselines serve a re-initialised model in the randomisation check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mmdx.data.note_spans import special_positions
from mmdx.errors import MmdxError, look_up_option
from mmdx.explain.grids import ImageGrid
from mmdx.keys import MODALITIES, Keys

if TYPE_CHECKING:
    from mmdx.bundle import Bundle
    from mmdx.predict import CohortInputs

#: Hounsfield value of air, the image baseline before the intensity window.
AIR_HU = -1000.0

IMAGE_BASELINES = ("air", "blur")


@dataclass(frozen=True)
class FeatureInfo:
    """A tabular column in the clinician's terms.

    ``unit``: canonical UCUM unit (``None`` for a case column such as ``age`` or a categorical column);
    ``reference``: ``(low, high)`` normal range in ``unit`` when the catalogue has one.
    """

    key: str
    display: str
    unit: str | None = None
    reference: tuple[float, float] | None = None

    def is_abnormal(self, value: float | None) -> bool | None:
        """Whether ``value`` lies outside the reference range; ``None`` when unknown or not applicable."""
        if self.reference is None or value is None or not np.isfinite(value):
            return None
        return not self.reference[0] <= value <= self.reference[1]


_TENSOR_FIELDS = ("presence", "image", "tabular", "tabular_missing", "categorical", "text_ids", "text_mask")


@dataclass
class ExplainInputs:
    """A batch of ``B`` cases to explain.

    Model inputs (as the data pipeline collates them; see :class:`mmdx.keys.Keys`):

    - ``presence``: ``[B, M]`` bool over :data:`~mmdx.keys.MODALITIES`;
    - ``image``: ``[B, 1, H, W]`` or ``[B, 1, D, H, W]`` in [0, 1] (after windowing), or ``None``;
    - ``tabular`` / ``tabular_missing``: ``[B, F]`` normalised values (0 where missing) / 1 where missing;
    - ``categorical``: ``[B, C]`` int64 category indices, 0 = unknown;
    - ``text_ids`` / ``text_mask``: ``[B, T]`` int64.

    Context (all optional; without it attributions are reported by column index and token position):

    - ``features``: one :class:`FeatureInfo` per numeric column of ``tabular``; ``canonical``: ``[B, F]``
      raw values in the canonical unit (NaN = missing);
    - ``categorical_features``: one :class:`FeatureInfo` per categorical column; ``categories``: ``[B][C]``
      the category labels (``None`` = unknown);
    - ``texts``: the joined note of each case; ``text_offsets``: ``[B, T, 2]`` character offsets into it;
    - ``image_grids``: per case the :class:`~mmdx.explain.grids.ImageGrid` (``None`` without an image);
    - ``pad_id``: the tokenizer's padding id (the text baseline).
    """

    case_ids: list[str]
    presence: Tensor
    image: Tensor | None = None
    tabular: Tensor | None = None
    tabular_missing: Tensor | None = None
    categorical: Tensor | None = None
    text_ids: Tensor | None = None
    text_mask: Tensor | None = None
    features: list[FeatureInfo] | None = None
    canonical: np.ndarray | None = None
    categorical_features: list[FeatureInfo] | None = None
    categories: list[list[str | None]] | None = None
    texts: list[str | None] | None = None
    text_offsets: np.ndarray | None = None
    image_grids: list[ImageGrid | None] | None = None
    pad_id: int = 0

    def __post_init__(self) -> None:
        b = len(self.case_ids)
        presence = torch.as_tensor(self.presence)
        if presence.ndim != 2 or presence.shape != (b, len(MODALITIES)):
            raise MmdxError(
                f"ExplainInputs: presence must have shape [B={b}, {len(MODALITIES)}] over "
                f"{', '.join(MODALITIES)}, got {tuple(presence.shape)}"
            )
        self.presence = presence.bool()
        for name in _TENSOR_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None and value.shape[0] != b:
                raise MmdxError(
                    f"ExplainInputs: {name} has {value.shape[0]} rows but there are {b} case ids; give one "
                    "row per case"
                )
        if (self.text_ids is None) != (self.text_mask is None):
            raise MmdxError("ExplainInputs: give text_ids and text_mask together (or neither)")
        if (
            self.features is not None
            and self.tabular is not None
            and len(self.features) != self.tabular.shape[1]
        ):
            raise MmdxError(
                f"ExplainInputs: {len(self.features)} feature descriptions for "
                f"{self.tabular.shape[1]} tabular "
                "columns; give one FeatureInfo per column"
            )

    def __len__(self) -> int:
        return len(self.case_ids)

    @property
    def batch(self) -> dict:
        """The model-ready batch dict (keys from :class:`~mmdx.keys.Keys`)."""
        out: dict = {Keys.CASE_ID: list(self.case_ids), Keys.PRESENCE: self.presence}
        for key, name in (
            (Keys.IMAGE, "image"),
            (Keys.TABULAR, "tabular"),
            (Keys.TABULAR_MISSING, "tabular_missing"),
            (Keys.CATEGORICAL, "categorical"),
            (Keys.TEXT_IDS, "text_ids"),
            (Keys.TEXT_MASK, "text_mask"),
        ):
            value = getattr(self, name)
            if value is not None:
                out[key] = value
        return out

    def text_special(self) -> Tensor | None:
        """``[B, T]`` bool: special-token positions ([CLS], [SEP]) that the text baseline keeps.

        Taken from the token offsets (real tokens with an empty span); without offsets, none.
        """
        if self.text_ids is None:
            return None
        if self.text_offsets is None:
            return torch.zeros_like(self.text_ids, dtype=torch.bool)
        mask = self.text_mask.cpu().numpy()
        special = np.stack([special_positions(o, m) for o, m in zip(self.text_offsets, mask, strict=True)])
        return torch.from_numpy(special).to(self.text_ids.device)

    def subset(self, index: Sequence[int]) -> ExplainInputs:
        """The cases at ``index`` (repeats allowed), with their context."""
        index = [int(i) for i in index]
        rows = torch.as_tensor(index, dtype=torch.long)
        changes: dict[str, Any] = {"case_ids": [self.case_ids[i] for i in index]}
        for name in _TENSOR_FIELDS:
            value = getattr(self, name)
            changes[name] = None if value is None else value.index_select(0, rows.to(value.device))
        for name in ("canonical", "text_offsets"):
            value = getattr(self, name)
            changes[name] = None if value is None else np.asarray(value)[index]
        for name in ("categories", "texts", "image_grids"):
            value = getattr(self, name)
            changes[name] = None if value is None else [value[i] for i in index]
        return replace(self, **changes)

    def to(self, device: torch.device | str) -> ExplainInputs:
        changes = {n: getattr(self, n).to(device) for n in _TENSOR_FIELDS if getattr(self, n) is not None}
        return replace(self, **changes)

    @classmethod
    def from_batch(cls, batch: Mapping[str, Any], case_ids: Sequence[str] | None = None, **context: Any):
        """Wrap a collated batch (keys from :class:`~mmdx.keys.Keys`); ``context``: the optional fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(context) - known)
        if unknown:
            raise MmdxError(
                f"ExplainInputs.from_batch: unknown context {unknown}; expected some of {sorted(known)}"
            )
        given = [batch.get(k) for k in (Keys.PRESENCE, Keys.IMAGE, Keys.TABULAR, Keys.TEXT_IDS)]
        first = next((t for t in given if isinstance(t, Tensor)), None)
        if first is None:
            raise MmdxError("ExplainInputs.from_batch: the batch holds no model input (image, tabular, text)")
        size = first.shape[0]
        ids = list(case_ids) if case_ids is not None else list(batch.get(Keys.CASE_ID) or [])
        if not ids:
            ids = [f"case{i}" for i in range(size)]
        presence = batch.get(Keys.PRESENCE)
        if presence is None:
            presence = torch.zeros(size, len(MODALITIES), dtype=torch.bool)
            for j, keys in enumerate(((Keys.IMAGE,), (Keys.TABULAR, Keys.CATEGORICAL), (Keys.TEXT_IDS,))):
                presence[:, j] = any(batch.get(k) is not None for k in keys)
        return cls(
            case_ids=ids,
            presence=presence,
            image=batch.get(Keys.IMAGE),
            tabular=batch.get(Keys.TABULAR),
            tabular_missing=batch.get(Keys.TABULAR_MISSING),
            categorical=batch.get(Keys.CATEGORICAL),
            text_ids=batch.get(Keys.TEXT_IDS),
            text_mask=batch.get(Keys.TEXT_MASK),
            **context,
        )


@dataclass
class Baselines:
    """Reference inputs, one row per case (see the module docs for the choices).

    ``image``: like ``ExplainInputs.image``; ``tabular``: ``[B, F]`` normalised; ``text_ids``: ``[B, T]``;
    ``categorical``: ``[B, C]`` (used by occlusion only). ``description`` says what each one is, for the
    explanation files.
    """

    image: Tensor | None = None
    tabular: Tensor | None = None
    text_ids: Tensor | None = None
    categorical: Tensor | None = None
    description: dict[str, str] = field(default_factory=dict)
    #: ``[K, C, *spatial]`` images of the training split (GradientShap's baseline distribution), or ``None``
    image_reference: Tensor | None = None
    #: ``[K, F]`` normalised values of training-split cases (expected-gradient tabular baselines), or ``None``
    tabular_reference: Tensor | None = None

    def subset(self, index: Sequence[int]) -> Baselines:
        rows = torch.as_tensor([int(i) for i in index], dtype=torch.long)
        changes = {
            n: (
                None
                if getattr(self, n) is None
                else getattr(self, n).index_select(0, rows.to(getattr(self, n).device))
            )
            for n in ("image", "tabular", "text_ids", "categorical")
        }
        return replace(self, **changes)


def air_value(window: tuple[float, float]) -> float:
    """The intensity of air after the HU window ``(low, high)`` is mapped to [0, 1] (clipped)."""
    low, high = float(window[0]), float(window[1])
    return float(np.clip((AIR_HU - low) / (high - low), 0.0, 1.0))


def _blur(image: Tensor, sigma: float) -> Tensor:
    from scipy.ndimage import gaussian_filter

    array = image.detach().cpu().numpy()
    # blur the spatial axes only, never across cases or channels
    sigmas = (0.0, 0.0) + (float(sigma),) * (array.ndim - 2)
    blurred = gaussian_filter(array.astype(np.float64), sigma=sigmas, mode="nearest")
    return torch.from_numpy(blurred).to(image.dtype).to(image.device)


def blurred(image: Tensor, sigma: float = 3.0) -> Tensor:
    """A Gaussian-blurred copy of ``image`` (``sigma`` in model voxels)."""
    return _blur(image, sigma)


def make_baselines(
    inputs: ExplainInputs, image: str = "air", image_value: float = 0.0, blur_sigma: float = 3.0
) -> Baselines:
    """The documented baselines for ``inputs``.

    Args:
        inputs: the cases.
        image: ``"air"`` (every voxel ``image_value``) or ``"blur"`` (Gaussian blur of the image).
        image_value: the air value on the model's intensity scale; :func:`air_value` of the bundle's window.
        blur_sigma: standard deviation of the blur, in model voxels.
    """
    image = look_up_option(image, IMAGE_BASELINES, what="image baseline")
    description: dict[str, str] = {}
    image_baseline = None
    if inputs.image is not None:
        if image == "air":
            image_baseline = torch.full_like(inputs.image, float(image_value))
            description["image"] = f"air (intensity {image_value:g} after the window)"
        else:
            if not blur_sigma > 0:
                raise MmdxError(f"make_baselines: blur_sigma must be > 0 voxels, got {blur_sigma}")
            image_baseline = _blur(inputs.image, blur_sigma)
            description["image"] = f"Gaussian blur of the image, sigma {blur_sigma:g} voxels"
    tabular = None
    if inputs.tabular is not None:
        tabular = torch.zeros_like(inputs.tabular)
        description["tabular"] = "training median (0 in normalised units), missing indicators unchanged"
    categorical = None
    if inputs.categorical is not None:
        categorical = torch.zeros_like(inputs.categorical)
        description["categorical"] = "unknown (index 0); occlusion only, held fixed by integrated gradients"
    text_ids = None
    if inputs.text_ids is not None:
        keep = inputs.text_special() | (inputs.text_mask == 0)
        text_ids = torch.where(keep, inputs.text_ids, torch.full_like(inputs.text_ids, int(inputs.pad_id)))
        description["text"] = "[PAD] at every real token except [CLS]/[SEP], attention mask unchanged"
    return Baselines(image_baseline, tabular, text_ids, categorical, description)


def _category_labels(bundle: Bundle, categorical: np.ndarray) -> list[list[str | None]]:
    normaliser = bundle.preprocessing.normaliser
    inverse = [{i: v for v, i in normaliser.vocab_[c].items()} for c in normaliser.categorical_columns_]
    return [[inverse[j].get(int(k)) for j, k in enumerate(row)] for row in categorical]


def feature_infos(bundle: Bundle, catalogue: Any) -> tuple[list[FeatureInfo], list[FeatureInfo]]:
    """Numeric and categorical column descriptions of a bundle's tabular input, from the feature catalogue."""
    preprocessing = bundle.preprocessing
    numeric = []
    for key in preprocessing.tabular_columns:
        if key in preprocessing.features:
            feature = catalogue[key]
            numeric.append(FeatureInfo(key, feature.display, feature.unit, feature.reference))
        else:
            numeric.append(FeatureInfo(key, key.replace("_", " ").capitalize()))
    categorical = [
        FeatureInfo(c, c.replace("_", " ").capitalize())
        for c in preprocessing.normaliser.categorical_columns_
    ]
    return numeric, categorical


def cohort_explain_inputs(bundle: Bundle, prepared: CohortInputs, index: Sequence[int]) -> ExplainInputs:
    """:class:`ExplainInputs` for the cases at ``index`` of ``prepared.table`` (from
    :func:`mmdx.predict.prepare_inputs`), with the full context: feature names and units, raw values, note
    text and offsets, and each image's grid before and after preprocessing.
    """
    from mmdx.data.dataset import collate
    from mmdx.data.imaging import read_image
    from mmdx.data.plan import centre_slice
    from mmdx.data.text import pad_id

    index = [int(i) for i in index]
    batch = collate([prepared.dataset[i] for i in index])
    table = prepared.table
    preprocessing = bundle.preprocessing
    numeric, categorical = feature_infos(bundle, prepared.cohort.catalogue)
    grids: list[ImageGrid | None] = []
    image_config = preprocessing.image_config
    for i in index:
        path = table.image_paths[i]
        if image_config is None or path is None or not table.presence[i, 0] or prepared.cache is None:
            grids.append(None)
            continue
        model_image, model_affine = prepared.cache.load(path)
        original = read_image(path)
        array, affine = original.array, original.affine
        if image_config.dims == 2 and array.ndim == 3 and array.shape[2] > 1:
            array, affine = centre_slice(array, affine)  # what a 2D plan takes of a volume
        grids.append(
            ImageGrid(
                model_affine=np.asarray(model_affine, dtype=np.float64),
                model_shape=tuple(int(s) for s in model_image.shape[1:]),
                original_affine=np.asarray(affine, dtype=np.float64),
                original_shape=tuple(int(s) for s in array.shape),
            )
        )
    return ExplainInputs.from_batch(
        batch,
        case_ids=[table.case_ids[i] for i in index],
        features=numeric,
        canonical=table.canonical[index],
        categorical_features=categorical,
        categories=_category_labels(bundle, table.categorical[index]),
        texts=[table.texts[i] for i in index],
        text_offsets=table.text_offsets[index] if preprocessing.tokenizer is not None else None,
        image_grids=grids if image_config is not None else None,
        pad_id=pad_id(preprocessing.tokenizer) if preprocessing.tokenizer is not None else 0,
    )
