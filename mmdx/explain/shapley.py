"""Exact Shapley values of the modalities of each case.

The players are the modalities a case has. The value of a coalition ``S`` is the model's output with only
the modalities in ``S`` present, which the fusion computes exactly by masking (``presence``), so no
modality has to be imputed: ``v(S) = f(x; presence = S)`` and ``v({}) = f(none)``, the model's learned
"no evidence" prediction. With ``p`` present modalities,

    phi_i = sum over S subset of P \\ {i} of |S|! (p - |S| - 1)! / p! * (v(S + {i}) - v(S)),

which has every Shapley property: the values sum to ``v(P) - v({})`` (efficiency), two modalities that
change every coalition alike get equal values (symmetry), a modality that changes nothing gets 0 (null
player), and a modality the case lacks gets exactly 0. With three modalities there are at most 8
coalitions, so nothing is sampled: the encoders run once and the fusion once per coalition.

The value is the same output :func:`~mmdx.explain.attribution.explain` attributes: the calibrated logit of
the target class (``logit / temperature + offset``, negated for the negative class). Combinations are computed in
float64, so efficiency holds to float64 rounding of the float32 outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Keys

N_MODALITIES = len(MODALITIES)
#: Every coalition as a bool row over MODALITIES; row ``s`` has bit ``j`` of ``s`` for modality ``j``.
COALITIONS = torch.tensor(
    [[bool(s >> j & 1) for j in range(N_MODALITIES)] for s in range(2**N_MODALITIES)], dtype=torch.bool
)


def coalition_label(index: int) -> str:
    """``"image+text"``-style name of coalition ``index`` (``"none"`` for the empty one)."""
    return "+".join(str(m) for j, m in enumerate(MODALITIES) if index >> j & 1) or "none"


def coalition_index(presence_row: Tensor) -> int:
    """The coalition index of a ``[M]`` bool row."""
    return int(sum(1 << j for j in range(N_MODALITIES) if bool(presence_row[j])))


@dataclass
class ModalityShapley:
    """Shapley values of ``B`` cases.

    Attributes:
        values: ``[B, M]`` float64 over :data:`~mmdx.keys.MODALITIES`; 0 for an absent modality.
        subset_values: ``[B, 2**M]`` float64; column ``s`` is ``v(S ∩ P)`` for coalition ``s``
            (:data:`COALITIONS`), i.e. the output with only those of the case's modalities present.
        presence: ``[B, M]`` bool, the players of each case.
    """

    values: Tensor
    subset_values: Tensor
    presence: Tensor

    @property
    def base(self) -> Tensor:
        """``[B]``: ``v({})``, the output with no modality."""
        return self.subset_values[:, 0]

    @property
    def full(self) -> Tensor:
        """``[B]``: ``v(P)``, the output with every modality the case has."""
        index = torch.tensor([coalition_index(row) for row in self.presence], dtype=torch.long)
        return self.subset_values.gather(1, index[:, None]).squeeze(1)

    def case_dict(self, i: int) -> dict[str, Any]:
        """JSON-ready values of case ``i``: one per modality, ``base_value``, ``full_value``, ``subsets``."""
        out: dict[str, Any] = {str(m): float(self.values[i, j]) for j, m in enumerate(MODALITIES)}
        out["base_value"] = float(self.base[i])
        out["full_value"] = float(self.full[i])
        players = coalition_index(self.presence[i])
        out["subsets"] = {
            coalition_label(s): float(self.subset_values[i, s])
            for s in range(2**N_MODALITIES)
            if s & ~players == 0
        }
        return out


def shapley_weights(n_players: int) -> list[float]:
    """``w[k] = k! (n - k - 1)! / n!``: the weight of a coalition of size ``k`` not holding the player."""
    return [
        math.factorial(k) * math.factorial(n_players - k - 1) / math.factorial(n_players)
        for k in range(n_players)
    ]


def shapley_from_subset_values(subset_values: Tensor, presence: Tensor) -> Tensor:
    """Exact Shapley values ``[B, M]`` from coalition values ``[B, 2**M]`` (see the module docs).

    ``subset_values[:, s]`` must be the value of coalition ``s`` restricted to the case's players
    ``presence`` ``[B, M]``; coalitions holding an absent modality are never read.
    """
    if subset_values.ndim != 2 or subset_values.shape[1] != 2**N_MODALITIES:
        raise MmdxError(
            f"shapley_from_subset_values: expected [B, {2**N_MODALITIES}] coalition values, got "
            f"{tuple(subset_values.shape)}"
        )
    values = subset_values.double()
    out = torch.zeros(values.shape[0], N_MODALITIES, dtype=torch.float64, device=values.device)
    for b in range(values.shape[0]):
        players = coalition_index(presence[b])
        p = bin(players).count("1")
        if p == 0:
            continue
        weights = shapley_weights(p)
        for j in range(N_MODALITIES):
            bit = 1 << j
            if not players & bit:
                continue
            total = torch.zeros((), dtype=torch.float64, device=values.device)
            for s in range(2**N_MODALITIES):
                if s & ~players or s & bit:
                    continue
                total = total + weights[bin(s).count("1")] * (values[b, s | bit] - values[b, s])
            out[b, j] = total
    return out


def _presence(batch: Mapping[str, Any], features: Mapping, device: torch.device) -> Tensor:
    presence = batch.get(Keys.PRESENCE)
    if presence is not None:
        return torch.as_tensor(presence).bool()
    if not features:
        raise MmdxError("modality_shapley: the batch holds no input for any of the model's modalities")
    size = next(iter(features.values())).shape[0]
    presence = torch.zeros(size, N_MODALITIES, dtype=torch.bool, device=device)
    for modality in features:
        presence[:, MODALITIES.index(modality)] = True
    return presence


@torch.no_grad()
def modality_shapley(
    model: nn.Module,
    batch: Mapping[str, Any],
    temperature: float = 1.0,
    target: int | None = None,
    offset: float = 0.0,
) -> ModalityShapley:
    """Exact modality Shapley values of a collated batch (keys from :class:`~mmdx.keys.Keys`).

    Args:
        model: a :class:`~mmdx.models.classifier.MultimodalClassifier` (evaluated in eval mode).
        batch: the cases; ``Keys.PRESENCE`` ``[B, M]`` says which modalities each case has (default: every
            modality whose input the batch holds).
        temperature: the bundle's calibration temperature and ``offset`` its offset; the value is the
            calibrated logit ``logit / temperature + offset`` (the offset moves no Shapley value).
        target: ``None``/1 for the positive class, 0 for the negative class (the value is negated).

    Returns:
        :class:`ModalityShapley` with ``values`` ``[B, M]`` and ``subset_values`` ``[B, 2**M]``.
    """
    # an ensemble's output is the mean of its members' calibrated outputs, and Shapley values are linear in
    # the value function: each coalition's value is the mean of the members' calibrated values
    members = getattr(model, "calibrated_members", None)
    parts = list(members()) if members is not None else [(model, 1.0, 0.0)]
    if not all(hasattr(m, "encode") and hasattr(m, "fusion") for m, _, _ in parts):
        raise MmdxError(f"modality_shapley needs a mmdx MultimodalClassifier, got {type(model).__name__}")
    if target not in (None, 0, 1) or isinstance(target, bool):
        raise MmdxError(f"modality_shapley: target must be None, 0 or 1, got {target!r}")
    if not temperature > 0:
        raise MmdxError(f"modality_shapley: temperature must be > 0, got {temperature!r}")
    sign = -1.0 if target == 0 else 1.0
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
    was_training = model.training
    model.eval()
    try:
        encoded = [(member.encode(batch), float(scale), float(shift)) for member, scale, shift in parts]
        presence = _presence(batch, encoded[0][0], device)
        subset_values = []
        for coalition in COALITIONS:
            mask = presence & coalition.to(device)[None, :]
            logits = torch.stack(
                [
                    member.fusion(features, mask).logits.double() * scale + shift
                    for (member, _, _), (features, scale, shift) in zip(parts, encoded, strict=True)
                ]
            ).mean(0)
            subset_values.append((logits / float(temperature) + offset) * sign)
    finally:
        model.train(was_training)
    subset = torch.stack(subset_values, dim=1).cpu()  # [B, 2**M]
    presence = presence.cpu()
    # modalities the model lacks are masked by the fusion too; they are not players
    has = torch.tensor([m in tuple(model.modalities) for m in MODALITIES], dtype=torch.bool)
    presence = presence & has[None, :]
    return ModalityShapley(shapley_from_subset_values(subset, presence), subset, presence)


__all__ = [
    "COALITIONS",
    "ModalityShapley",
    "coalition_index",
    "coalition_label",
    "modality_shapley",
    "shapley_from_subset_values",
    "shapley_weights",
]
