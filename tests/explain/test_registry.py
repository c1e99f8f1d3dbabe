"""Every encoder of the registry that trains from scratch can be explained, so a new one is covered at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdx.explain.attribution import explain
from mmdx.explain.inputs import ExplainInputs
from mmdx.explain.shapley import modality_shapley
from mmdx.keys import Modality
from mmdx.models.classifier import build_model
from mmdx.models.registry import ENCODERS, encoder_names

from .toys import random_batch

#: Encoders that need no local checkpoint (pretrained text encoders bring their own files).
SCRATCH = [n for n in encoder_names() if getattr(ENCODERS.get(n), "tokenizer", None) is None]
TINY = {
    "small_cnn": {"spatial_dims": 2, "channels": [4, 8], "out_dim": 8},
    "ft_transformer": {
        "n_features": 6,
        "categorical_cardinalities": [3, 4],
        "dim": 8,
        "heads": 2,
        "depth": 1,
    },
    "mlp": {"n_features": 6, "categorical_cardinalities": [3, 4], "dim": 8, "hidden_dim": 16, "depth": 1},
    "linear": {"n_features": 6, "categorical_cardinalities": [3, 4], "dim": 8},
    "transformer": {"vocab_size": 50, "dim": 8, "heads": 2, "depth": 1, "max_length": 16},
    "text_cnn": {"vocab_size": 50, "max_length": 16},
}
#: Integrated Gradients' completeness error allowed at 32 Gauss-Legendre steps on these tiny models, whose
#: outputs move by 1e-4 to 1e-2 between baseline and input; measured up to 3.1e-4 (ResNet-50 image encoder)
#: at 32 steps and 1.1e-3 at 8 steps. The definition check below cannot fail by itself; this bound can.
DELTA_STEPS = 32
DELTA_BOUND = 1e-3
DEFAULTS = {
    Modality.IMAGE: ("small_cnn", TINY["small_cnn"]),
    Modality.TABULAR: ("ft_transformer", TINY["ft_transformer"]),
    Modality.TEXT: ("transformer", TINY["transformer"]),
}


def _arguments(name: str) -> dict:
    if name in TINY:
        return TINY[name]
    if ENCODERS.get(name).modality == Modality.IMAGE:
        return {"spatial_dims": 2}
    pytest.skip(f"no small arguments known for encoder {name!r}; add them to TINY")


@pytest.mark.parametrize("name", SCRATCH)
def test_every_encoder_can_be_explained(name):
    torch.manual_seed(0)
    modality = ENCODERS.get(name).modality
    spec = {str(m): {"name": n, **a} for m, (n, a) in DEFAULTS.items()}
    spec[str(modality)] = {"name": name, **_arguments(name)}
    model = build_model(**spec, fusion={"name": "gated_attention", "dim": 8, "heads": 2}).eval()
    data = random_batch(2, 1, image_shape=(32, 32))
    explanations = explain(model, ExplainInputs.from_batch(data), n_steps=DELTA_STEPS, internal_batch_size=8)
    shapley = modality_shapley(model, data)
    for i, e in enumerate(explanations):
        total = sum(v for v in e.modality_totals.values() if v is not None)
        assert e.convergence_delta == pytest.approx(total - (e.output - e.baseline_output), abs=1e-5)
        assert abs(e.convergence_delta) <= DELTA_BOUND, f"{name}: |delta| {abs(e.convergence_delta):.2e}"
        assert np.isfinite(e.image_map).all() and np.isfinite(e.token_attributions).all()
        assert e.output == pytest.approx(float(shapley.full[i]), abs=1e-5)
