"""The smoothed-map experiment: the product's maps, blurred as the blurred image baseline is."""

from __future__ import annotations

from dataclasses import replace

import torch

from benchmarks.smoothed_maps import register
from mmdx.explain.attribution import EXPLANATION_METHODS
from mmdx.explain.inputs import blurred


def test_the_registered_variants_blur_what_the_product_method_draws(monkeypatch) -> None:
    monkeypatch.setattr(EXPLANATION_METHODS, "_specs", dict(EXPLANATION_METHODS._specs))
    sharp = torch.zeros(1, 1, 7, 7)
    sharp[0, 0, 3, 3] = 2.0
    for base in ("multiscale_cam", "hirescam"):
        spec = EXPLANATION_METHODS.get(base)
        EXPLANATION_METHODS._specs[base] = replace(
            spec, attribute=lambda call: {"attributions": {"image": sharp.clone()}, "totals": {"image": 1.0}}
        )
    names = register()
    assert names == [f"{b}_g{s}" for b in ("multiscale_cam", "hirescam") for s in (1, 2, 4)]
    assert register() == names  # idempotent
    result = EXPLANATION_METHODS.get("hirescam_g2").attribute(None)
    assert torch.allclose(result["attributions"]["image"], blurred(sharp, 2))
    assert result["totals"] == {"image": 1.0}
    assert "HiResCAM" in EXPLANATION_METHODS.get("hirescam_g2").title
