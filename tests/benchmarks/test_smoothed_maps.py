"""The smoothed-map experiment: a normalised Gaussian blur in 2D and 3D, wrapped around the product's maps."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmarks.smoothed_maps import gaussian_blur, register
from mmdx.explain.attribution import EXPLANATION_METHODS


@pytest.mark.parametrize("shape", [(9, 9), (9, 9, 9)])
def test_the_blur_spreads_a_point_into_a_centred_gaussian_of_the_same_total(shape) -> None:
    point = torch.zeros(2, 1, *shape)
    centre = tuple(s // 2 for s in shape)
    point[(0, 0, *centre)] = 1.0
    blurred = gaussian_blur(point, 1.0)
    assert blurred.shape == point.shape and not blurred[1].any()
    assert float(blurred[0].sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.argmax(blurred[0, 0]).item() == torch.argmax(point[0, 0]).item()
    profile = blurred[(0, 0, *centre[:-1])]
    ratio = float(profile[centre[-1] + 1] / profile[centre[-1]])
    assert ratio == pytest.approx(torch.exp(torch.tensor(-0.5)).item(), rel=1e-4)  # sigma = 1 voxel
    wider = gaussian_blur(point, 2.0)
    assert wider[(0, 0, *centre)] < blurred[(0, 0, *centre)]


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
    assert torch.allclose(result["attributions"]["image"], gaussian_blur(sharp, 2))
    assert result["totals"] == {"image": 1.0}
    assert "HiResCAM" in EXPLANATION_METHODS.get("hirescam_g2").title
