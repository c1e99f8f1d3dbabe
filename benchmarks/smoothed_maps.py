"""Image maps smoothed with a Gaussian before they are scored: does a smoother map point at the lesion, and
does it still pass the model-randomisation test?

Registers, for the multi-scale CAM and HiResCAM, the same map blurred with a Gaussian of standard deviation
1, 2 or 4 voxels of the model grid (``multiscale_cam_g2``, ``hirescam_g1``, ...; the blur of the image
baseline, :func:`mmdx.explain.inputs.blurred`), then runs :mod:`benchmarks.image_attribution` with the same
arguments::

    .venv/bin/python -m benchmarks.smoothed_maps RUN --split val --limit 200 --check-cases 200 \\
        --methods multiscale_cam hirescam@stem multiscale_cam_g1 multiscale_cam_g2 multiscale_cam_g4 \\
        hirescam_g1 hirescam_g2 hirescam_g4 --json out.json

Not a product method: the measurement that rejected it is in BENCHMARKS.md ("A multi-scale CAM").
"""

from __future__ import annotations

import sys
from dataclasses import replace

from mmdx.explain.attribution import EXPLANATION_METHODS
from mmdx.explain.inputs import blurred

SIGMAS = (1, 2, 4)
SMOOTHED = ("multiscale_cam", "hirescam")


def register() -> list[str]:
    """Register the smoothed variants (once); returns their names."""
    names = []
    for base in SMOOTHED:
        spec = EXPLANATION_METHODS.get(base)
        for sigma in SIGMAS:
            name = f"{base}_g{sigma}"
            names.append(name)
            if name in EXPLANATION_METHODS:
                continue

            def attribute(call, spec=spec, sigma=sigma):
                result = spec.attribute(call)
                image = result["attributions"]["image"]
                result["attributions"] = {**result["attributions"], "image": blurred(image, sigma)}
                return result

            EXPLANATION_METHODS.register(
                replace(
                    spec,
                    name=name,
                    title=f"{spec.title}, Gaussian σ = {sigma} voxels",
                    short=name,
                    suffix=f"_{name}",
                    description=f"{spec.description}; blurred with a Gaussian of {sigma} voxels",
                    attribute=attribute,
                )
            )
    return names


def main(argv: list[str] | None = None) -> int:
    from benchmarks.image_attribution import main as score

    register()
    return score(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
