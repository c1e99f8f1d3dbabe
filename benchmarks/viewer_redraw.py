"""Server-side slice redraw of the case page's image viewer on a large CT volume.

A synthetic CT volume (default 512×512×200 voxels of 0.7×0.7×2.5 mm, stored in LPS order as a DICOM series
would give it, so the viewer has to turn it) with an attribution map on the same grid and a lesion mask is
written as NIfTI and opened with :func:`mmdx.review.viewer.load_native_image`, as the case page does. Then,
for random slices (seeded), each redraw is timed as the dashboard does it: the plane's slice windowed,
overlaid, outlined, scaled to the display and encoded as an inline PNG data URL.

* ``plane``: one plane redrawn (what changes when its slider moves);
* ``viewer``: the three planes redrawn (what the viewer's Streamlit fragment computes on any control change).

Also reports the bytes a WebGL viewer would have to receive before its first frame (the volume and the map
as gzipped NIfTI, base64 in the component's arguments), for the comparison in the README. Times are wall
clock (``perf_counter``) and, for one plane, the process's CPU time, which the machine's other load does not
inflate. The files are written uncompressed (the load time is then without gunzip).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/viewer_redraw.py --repeats 60 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from mmdx.review import png_data_url
from mmdx.review.viewer import PLANES, encode_png, load_native_image, viewer_presets


def synthetic_ct(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(HU volume, attribution, lesion mask)``: air, a body ellipse of soft tissue with noise, two lungs,
    a spine of bone and a nodule; the attribution a blob on the nodule plus signed noise."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    body = (x / 0.9) ** 2 + (y / 0.7) ** 2 < 1
    lungs = ((np.abs(x) - 0.4) / 0.28) ** 2 + (y / 0.45) ** 2 < 1
    spine = x**2 + (y + 0.55) ** 2 < 0.01
    plane = np.where(body, 40.0, -1000.0)
    plane[lungs] = -850.0
    plane[spine] = 700.0
    volume = np.repeat(plane[:, :, None], shape[2], axis=2).astype(np.float32)
    volume += rng.standard_normal(shape, dtype=np.float32) * 15
    centre = np.array([0.68, 0.5, 0.55]) * np.array(shape)
    radius = np.array([12.0, 12.0, 5.0])
    axes = [
        ((np.arange(n, dtype=np.float32) - c) / r) ** 2 for n, c, r in zip(shape, centre, radius, strict=True)
    ]
    distance = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
    mask = distance < 1
    volume[mask] = 30.0
    attribution = rng.standard_normal(shape, dtype=np.float32) * 5e-6
    attribution += np.exp(-np.minimum(distance, 50) / 2) * 1e-3
    return volume, attribution, mask.astype(np.uint8)


def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(array, 50)), 1),
        "p90_ms": round(float(np.percentile(array, 90)), 1),
        "max_ms": round(float(array.max()), 1),
        "n": len(values),
    }


def run(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    repeats: int,
    seed: int,
    png_dir: Path | None = None,
) -> dict:
    volume, attribution, mask = synthetic_ct(shape, seed)
    # stored as a DICOM series is: rows along -x, columns along -y (LPS), slices inferior to superior
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    with tempfile.TemporaryDirectory() as folder:
        paths = {name: Path(folder) / f"{name}.nii" for name in ("image", "map", "mask")}
        for name, array in (("image", volume), ("map", attribution), ("mask", mask)):
            nib.save(nib.Nifti1Image(array, affine), paths[name])
        # a WebGL component receives the files base64-encoded; gzip would shrink the smooth image, hardly the map
        webgl_bytes = sum(
            len(base64.b64encode(gzip.compress(paths[n].read_bytes(), 1))) for n in ("image", "map")
        )
        started = time.perf_counter()
        image, problems = load_native_image(paths["image"], paths["map"], paths["mask"], "CT")
        load_s = time.perf_counter() - started
    assert not problems, problems
    presets = list(viewer_presets(image.values, "CT", units="HU").values())
    rng = np.random.default_rng(seed)
    image.overlay_scale()  # computed once when the case opens
    if png_dir is not None:  # the three planes as the viewer opens them, to look at
        png_dir.mkdir(parents=True, exist_ok=True)
        for plane in PLANES:
            rgb = image.render(plane, image.default_slice(plane), presets[0], 0.5, True, True)
            (png_dir / f"viewer_512x512x200_{plane.value}.png").write_bytes(encode_png(rgb))
    image.render(PLANES[0], 0, presets[0])  # the first draw loads the colour table
    plane_times: dict[str, list[float]] = {p.value: [] for p in PLANES}
    cpu_times: list[float] = []
    viewer_times: list[float] = []
    sizes = []
    for repeat in range(repeats):
        window = presets[repeat % len(presets)]
        total = 0.0
        for plane in PLANES:
            index = int(rng.integers(image.n_slices(plane)))
            started, cpu = time.perf_counter(), time.process_time()
            url = png_data_url(encode_png(image.render(plane, index, window, 0.5, True, True)))
            elapsed = time.perf_counter() - started
            cpu_times.append(time.process_time() - cpu)
            plane_times[plane.value].append(elapsed)
            sizes.append(len(url))
            total += elapsed
        viewer_times.append(total)
    raw = volume.nbytes + attribution.nbytes
    return {
        "shape": list(shape),
        "spacing_mm": list(spacing),
        "seed": seed,
        "repeats": repeats,
        "load_s": round(load_s, 2),
        "plane": {name: _percentiles(times) for name, times in plane_times.items()},
        "plane_all": _percentiles([t for times in plane_times.values() for t in times]),
        "plane_cpu": _percentiles(cpu_times),
        "viewer": _percentiles(viewer_times),
        "png_data_url_kib_median": round(float(np.median(sizes)) / 1024, 1),
        "webgl_payload_mib": round(webgl_bytes / 2**20, 1),
        "volume_and_map_mib": round(raw / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200))
    parser.add_argument("--spacing", type=float, nargs=3, default=(0.7, 0.7, 2.5))
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path, help="write the three planes as first shown into this folder")
    args = parser.parse_args()
    result = run(tuple(args.shape), tuple(args.spacing), args.repeats, args.seed, args.png)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
