"""An ensemble of independently trained multimodal classifiers that predicts and explains as one model.

``train.ensemble: K`` trains K :class:`~mmdx.models.classifier.MultimodalClassifier` members with the same
settings and different seeds (their initial weights, batch order and augmentation differ), calibrates each on
the validation split, and combines them here. The ensemble's logit is the mean of the members' *calibrated*
logits, ``mean_k(logit_k / T_k + b_k)``: averaging members trained from different starting points removes
part of each one's variance (a better ranking) and the over-confidence a single calibrated model keeps on new
cases (Lakshminarayanan et al., "Simple and scalable predictive uncertainty estimation using deep ensembles",
NeurIPS 2017). Each member's temperature and offset are buffers of this module (``scales = 1 / T_k``,
``shifts = b_k``), so the bundle's weights carry them; the bundle's own calibration is then the identity.

The mean is linear in the members' logits, so every attribution that is linear in the explained output
(Integrated Gradients, gradients, GradientShap, occlusion, the modality Shapley values) of the ensemble is the
mean of the members' attributions of their calibrated logits; :meth:`EnsembleClassifier.forward_parts` takes
the same arguments as a single model's, the text as the members' token embeddings side by side
(:meth:`EnsembleClassifier.embed_text`), so the explanation code needs no second path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.keys import Modality
from mmdx.models.classifier import ModelOutput, MultimodalClassifier, batch_parts, build_model

#: the architecture key of an ensemble bundle (``config.yaml``'s ``architecture``)
ENSEMBLE_KEY = "ensemble"


class EnsembleClassifier(nn.Module):
    """K multimodal classifiers with the same modalities, each with its calibration; one output.

    Args:
        members: the trained members (at least two, the same modalities).
        temperatures: each member's calibration temperature ``T_k > 0`` (default 1).
        offsets: each member's calibration offset ``b_k`` (default 0).

    Attributes:
        modalities: the members' modalities.
        config: the architecture :func:`build_from_architecture` rebuilds it from.
    """

    def __init__(
        self,
        members: Sequence[MultimodalClassifier],
        temperatures: Sequence[float] | None = None,
        offsets: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(members) < 2:
            raise MmdxError(f"EnsembleClassifier needs at least two members, got {len(members)}")
        modalities = {tuple(m.modalities) for m in members}
        if len(modalities) != 1:
            raise MmdxError(
                "EnsembleClassifier: every member must have the same modalities, got "
                + "; ".join("+".join(map(str, m)) for m in sorted(modalities))
            )
        configs = [m.config for m in members]
        if any(c != configs[0] for c in configs[1:]):
            raise MmdxError("EnsembleClassifier: every member must have the same architecture (model.config)")
        count = len(members)
        temperatures = [1.0] * count if temperatures is None else [float(t) for t in temperatures]
        offsets = [0.0] * count if offsets is None else [float(b) for b in offsets]
        if len(temperatures) != count or len(offsets) != count:
            raise MmdxError(
                f"EnsembleClassifier: {count} members but {len(temperatures)} temperatures and "
                f"{len(offsets)} offsets"
            )
        if not all(t > 0 for t in temperatures):
            raise MmdxError(f"EnsembleClassifier: temperatures must be > 0, got {temperatures}")
        self.members = nn.ModuleList(members)
        self.register_buffer("scales", torch.tensor([1.0 / t for t in temperatures], dtype=torch.float32))
        self.register_buffer("shifts", torch.tensor(offsets, dtype=torch.float32))
        self.modalities: tuple[Modality, ...] = tuple(members[0].modalities)
        self.config: dict[str, Any] | None = (
            None if configs[0] is None else {ENSEMBLE_KEY: {"members": count}, "member": configs[0]}
        )

    # ---------------------------------------------------------------------------------------------------
    def calibrated_members(self) -> Iterator[tuple[MultimodalClassifier, Tensor, Tensor]]:
        """``(member, scale, shift)``: the member's calibrated logit is ``logit * scale + shift``."""
        for index, member in enumerate(self.members):
            yield member, self.scales[index], self.shifts[index]

    def _text_dims(self) -> list[int]:
        return [int(m.encoders[str(Modality.TEXT)].embedding_layer.embedding_dim) for m in self.members]

    def embed_text(self, ids: Tensor) -> Tensor:
        """``[B, T, sum_k D_k]``: every member's token embeddings of ``ids``, side by side."""
        return torch.cat([m.embed_text(ids) for m in self.members], dim=-1)

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        """Predict a collated batch (the keys of :meth:`MultimodalClassifier.forward`)."""
        return self.forward_parts(**batch_parts(self, batch))

    def forward_parts(
        self,
        image: Tensor | None = None,
        tabular: Tensor | None = None,
        tabular_missing: Tensor | None = None,
        categorical: Tensor | None = None,
        text_embeds: Tensor | None = None,
        text_mask: Tensor | None = None,
        presence: Tensor | None = None,
    ) -> ModelOutput:
        """The mean of the members' calibrated outputs; ``text_embeds`` as :meth:`embed_text` gives them.

        ``logits``: the mean calibrated logit; ``gates``, ``modality_logits`` and ``aux_logits`` (the
        encoders' own heads, uncalibrated): the members' means."""
        texts: list[Tensor | None] = [None] * len(self.members)
        if text_embeds is not None:
            dims = self._text_dims()
            if text_embeds.shape[-1] != sum(dims):
                raise MmdxError(
                    f"EnsembleClassifier: text_embeds has {text_embeds.shape[-1]} features per token, the "
                    f"members' embeddings side by side have {sum(dims)}; embed with embed_text"
                )
            texts = list(torch.split(text_embeds, dims, dim=-1))
        outputs = [
            member.forward_parts(
                image=image,
                tabular=tabular,
                tabular_missing=tabular_missing,
                categorical=categorical,
                text_embeds=text,
                text_mask=text_mask,
                presence=presence,
            )
            for member, text in zip(self.members, texts, strict=True)
        ]
        logits = torch.stack(
            [
                out.logits * scale + shift
                for out, (_, scale, shift) in zip(outputs, self.calibrated_members(), strict=True)
            ]
        ).mean(0)
        return ModelOutput(
            logits=logits,
            gates=torch.stack([out.gates for out in outputs]).mean(0),
            modality_logits=_mean_or_none([out.modality_logits for out in outputs]),
            aux_logits=_mean_or_none([out.aux_logits for out in outputs]),
        )


def _mean_or_none(values: list[Tensor | None]) -> Tensor | None:
    if any(v is None for v in values):
        return None
    return torch.stack(values).mean(0)  # type: ignore[arg-type]


def build_from_architecture(architecture: Mapping[str, Any]) -> nn.Module:
    """The model a bundle's ``architecture`` describes: a :class:`MultimodalClassifier` (``build_model``'s
    arguments) or an :class:`EnsembleClassifier` (``{"ensemble": {"members": K}, "member": {...}}``; the
    members' calibrations are buffers, filled when the weights are loaded)."""
    if ENSEMBLE_KEY not in architecture:
        return build_model(**architecture)
    spec, member = architecture[ENSEMBLE_KEY], architecture.get("member")
    count = spec.get("members") if isinstance(spec, Mapping) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 2 or not isinstance(member, Mapping):
        raise MmdxError(
            "architecture: an ensemble needs 'ensemble: {members: K}' with K >= 2 and a 'member' mapping, got "
            f"{dict(architecture)!r}"
        )
    return EnsembleClassifier([build_model(**member) for _ in range(count)])


__all__ = ["ENSEMBLE_KEY", "EnsembleClassifier", "build_from_architecture"]
