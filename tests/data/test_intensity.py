"""Intensity normalisation by modality: families, the three mappings, MONOCHROME1 inversion, mismatches."""

from __future__ import annotations

import numpy as np
import pytest

from mmdx.data.intensity import (
    IntensityMethod,
    IntensitySpec,
    ModalityFamily,
    apply_window,
    mismatch,
    modality_family,
    normalise,
    percentile_scale,
    robust_zscore,
    spec_for,
    window_bounds,
)


@pytest.mark.parametrize(
    ("code", "family"),
    [
        ("CT", ModalityFamily.CT),
        (" ct ", ModalityFamily.CT),
        ("MR", ModalityFamily.MR),
        ("CR", ModalityFamily.XR),
        ("DX", ModalityFamily.XR),
        ("MG", ModalityFamily.XR),
        ("NM", ModalityFamily.OTHER),
        ("", ModalityFamily.OTHER),
        (None, ModalityFamily.OTHER),
    ],
)
def test_modality_families(code: str | None, family: ModalityFamily) -> None:
    assert modality_family(code) == family


def test_window_maps_low_and_high_to_0_and_1() -> None:
    hu = np.array([-2000.0, -1000.0, -300.0, 400.0, 3000.0])
    assert apply_window(hu, -1000.0, 400.0).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert window_bounds(40.0, 400.0) == (-160.0, 240.0)
    with pytest.raises(ValueError):
        window_bounds(0.0, 0.0)


def test_robust_zscore_ignores_the_background_floor_and_a_scale_change() -> None:
    rng = np.random.default_rng(0)
    tissue = rng.normal(500.0, 50.0, size=(40, 40))
    image = np.zeros((64, 64))
    image[12:52, 12:52] = tissue
    z = robust_zscore(image)
    assert abs(np.median(z[12:52, 12:52])) < 0.1  # centred on the foreground, not on the zero background
    assert np.std(z[12:52, 12:52]) == pytest.approx(1.0, abs=0.1)
    np.testing.assert_allclose(robust_zscore(image * 7.3), z, atol=1e-9)  # arbitrary MR units cancel
    assert not np.any(robust_zscore(np.full((8, 8), 3.0)))


def test_percentile_scaling_is_unit_free_and_clipped() -> None:
    values = np.linspace(0.0, 1000.0, 10001)
    scaled = percentile_scale(values, 0.5, 99.5)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    np.testing.assert_allclose(percentile_scale(values * 40 + 7, 0.5, 99.5), scaled, atol=1e-9)
    assert not np.any(percentile_scale(np.ones(5), 0.5, 99.5))


@pytest.mark.parametrize("method", list(IntensityMethod))
def test_every_method_gives_float32_in_unit_range(method: IntensityMethod) -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(100.0, 400.0, size=(20, 20, 5))
    out = normalise(image, spec_for(method))
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.std() > 0.05


def test_monochrome1_is_inverted_by_percentile_scaling_only() -> None:
    image = np.arange(100.0).reshape(10, 10)
    spec = spec_for(IntensityMethod.PERCENTILE)
    plain = normalise(image, spec, "MONOCHROME2")
    inverted = normalise(image, spec, "MONOCHROME1")
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)
    window = spec_for(IntensityMethod.WINDOW, (0.0, 99.0))
    np.testing.assert_array_equal(normalise(image, window, "MONOCHROME1"), normalise(image, window))


def test_a_hu_window_does_not_fit_mr_or_radiographs() -> None:
    assert mismatch(ModalityFamily.MR, IntensityMethod.WINDOW) is not None
    assert mismatch(ModalityFamily.XR, IntensityMethod.WINDOW) is not None
    assert mismatch(ModalityFamily.CT, IntensityMethod.WINDOW) is None
    assert mismatch(ModalityFamily.MR, IntensityMethod.ZSCORE) is None


def test_specs_round_trip_and_refuse_nonsense() -> None:
    for method in IntensityMethod:
        spec = spec_for(method)
        assert IntensitySpec.from_dict(spec.to_dict()) == spec
        assert spec.describe()
    with pytest.raises(ValueError):
        IntensitySpec(IntensityMethod.WINDOW, window=(400.0, -1000.0))
    with pytest.raises(ValueError):
        IntensitySpec(IntensityMethod.PERCENTILE, percentiles=(99.0, 1.0))


def test_percentile_bounds_are_the_window_percentile_scaling_uses() -> None:
    from mmdx.data.intensity import percentile_bounds

    values = np.random.default_rng(3).gamma(2.0, 100.0, 5000)
    low, high = percentile_bounds(values, 1.0, 99.0)
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [1.0, 99.0])))
    assert percentile_bounds(np.full(4, 7.0), 1.0, 99.0) == (7.0, 8.0)  # a constant image: no zero width
    assert percentile_bounds(np.array([np.nan]), 1.0, 99.0) is None
