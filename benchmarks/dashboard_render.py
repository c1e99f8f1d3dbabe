"""Time from opening a case to its fully drawn page, server side, for a 2D and a 3D run.

Measurements per case, each repeated over several cases of each run:

* ``view``: :func:`mmdx.review.build_case_view`: the principal check, the ``open_case`` event, the
  prediction, the explanation files, the case's cohort files, the original image with its attribution map
  and lesion mask turned to RAS (:func:`mmdx.review.viewer.load_native_image`, what the viewer shows) and
  the image moved to the model grid (the model-input view); ``view_session``: the same with the cohort's
  tables read once per session (:func:`mmdx.review.open_cohort`), as the dashboard does;
* ``image_reads``: within ``view_session``, the time spent in :func:`mmdx.data.imaging.read_image` (image
  and mask files read and decoded), with the number of calls per case open;
* ``draw``: what the page's default view computes from the view: the window presets, the overlay scale and
  colour bar, every plane of the original image (three for a volume, one for a 2D image) at its default
  slice with overlay and contour as an inline PNG data URL, the vital-signs table and the highlighted note
  as HTML; ``draw_model_input``: the model-grid slice as PNG, drawn only when the reviewer picks that view;
* ``page_open`` and ``page_redraw``: the whole case page under Streamlit's AppTest (no browser, no
  network): opening it from another page (builds the view), and a redraw after choosing another window
  preset of the original-image viewer (the page's default view; reuses the view kept in the session, redraws
  every plane).

By default two tiny runs are built first (2D 32², 3D 32³, one epoch, placeholder explanations); ``--size``
sets the side of their images and ``--grid`` the side of the model's grid (default: the image's, so the
original image and the model input have one size; a smaller grid gives the finer originals the viewer is
for); pass ``--run2d``/``--run3d`` to time existing runs (e.g. with real ``mmdx explain`` output).

    .venv/bin/python -m benchmarks.dashboard_render --repeats 10 --json dashboard_render.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import mmdx.data.imaging
from mmdx.review import (
    build_case_view,
    encode_png,
    open_cohort,
    open_review_context,
    png_data_url,
    sign_in,
    window_presets,
)
from mmdx.review.formatting import tabular_table_html
from mmdx.review.highlight import highlight_note
from mmdx.review.viewer import NativeImage, colour_bar_html, viewer_presets
from mmdx.run import RunPaths
from mmdx.store import Operator, ReviewStore, Role
from mmdx.workflows.sample_run import build_sample_run
from tests.support.review_runs import write_placeholder_explanations

PASSWORD = "benchmark passphrase"
APP = Path(__file__).resolve().parents[1] / "clinical_ui" / "app.py"


def _cases(run: Path, limit: int) -> list[str]:
    """Cases with an image, explained ones first, most probable first."""
    predictions = RunPaths(Path(run)).read_predictions()
    predictions = predictions[predictions["has_image"]]
    explained = (
        {p.name for p in (run / "explanations").iterdir()} if (run / "explanations").is_dir() else set()
    )
    predictions = predictions.assign(explained=predictions["case_id"].isin(explained))
    ordered = predictions.sort_values(["explained", "probability"], ascending=False)
    return ordered["case_id"].tolist()[:limit]


def _summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "median_ms": 1000 * statistics.median(ordered),
        "p90_ms": 1000 * ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max_ms": 1000 * ordered[-1],
    }


class _ReadCounter:
    """Wraps :func:`mmdx.data.imaging.read_image` (which the image loaders import when called) to count the
    image and mask files read and decoded, and the time spent doing it."""

    def __init__(self) -> None:
        self.original = mmdx.data.imaging.read_image
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.original(*args, **kwargs)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - start

    def __enter__(self) -> _ReadCounter:
        mmdx.data.imaging.read_image = self
        return self

    def __exit__(self, *exc: object) -> None:
        mmdx.data.imaging.read_image = self.original


def draw_native(image: NativeImage) -> list[str]:
    """What the original-image viewer computes when the case opens: presets, overlay scale, colour bar and
    each plane at its default slice (default preset, overlay at 0.5, contour) as an inline PNG data URL."""
    presets = viewer_presets(image.values, image.modality, image.photometric, image.units)
    window = next(iter(presets.values()))
    scale = image.overlay_scale()
    if scale is not None:
        colour_bar_html(scale)
    return [
        png_data_url(
            encode_png(image.render(plane, image.default_slice(plane), window, 0.5, scale is not None, True))
        )
        for plane in image.planes()
    ]


def time_library(run: Path, store_url: str, cases: list[str]) -> dict:
    store = ReviewStore(store_url, bcrypt_rounds=4)
    context = open_review_context(run, store)
    session = sign_in(store, "bench", PASSWORD)
    window = window_presets(context.image_config)["lung"]
    build_case_view(context, session.principal, cases[0])  # first open pays one-time imports
    cohort = open_cohort(context, session.principal)
    views, session_views, reads, draws, model_draws = [], [], [], [], []
    read_calls, planes, native_shape = [], 0, None
    for case_id in cases:
        start = time.perf_counter()
        build_case_view(context, session.principal, case_id)
        views.append(time.perf_counter() - start)
        with _ReadCounter() as counter:
            start = time.perf_counter()
            view = build_case_view(context, session.principal, case_id, cohort=cohort)
            session_views.append(time.perf_counter() - start)
        reads.append(counter.seconds)
        read_calls.append(counter.calls)
        start = time.perf_counter()
        if view.native is not None:
            planes = len(draw_native(view.native))
            native_shape = list(view.native.shape)
        tabular_table_html(view.tabular)
        if view.note_text:
            highlight_note(view.note_text, view.note_spans)
        draws.append(time.perf_counter() - start)
        if view.image is not None:
            start = time.perf_counter()
            png_data_url(encode_png(view.image.render(view.image.default_slice(), window, 0.5)))
            model_draws.append(time.perf_counter() - start)
    shape = list(context.image_config.shape) if context.image_config else None
    store.close()
    return {
        "grid": shape,
        "native_shape": native_shape,
        "planes_drawn": planes,
        "image_reads_per_open": max(read_calls) if read_calls else 0,
        "view": _summary(views),
        "view_session": _summary(session_views),
        "image_reads": _summary(reads),
        "draw": _summary(draws),
        "draw_model_input": _summary(model_draws) if model_draws else None,
    }


#: Keys of the viewer's window presets (CT in HU; percentiles for other modalities).
PRESET_KEYS = ("soft_tissue", "lung", "bone", "brain", "auto", "wide")


def _other_window(at, case_id: str, original: str):
    """The original-image viewer's window radio (the page's default view) set to a preset other than the
    one shown, or ``None`` when the viewer is not shown or offers one preset."""
    mode = [r for r in at.radio if r.key == f"image_mode_{case_id}"]
    if not mode or mode[0].value != original:
        return None
    radios = [r for r in at.radio if r.key == f"native_window_{case_id}"]
    if not radios:
        raise RuntimeError(f"the case page of {case_id} shows no window choice in its original-image view")
    radio = radios[0]
    for key in PRESET_KEYS:
        try:
            offered = radio.format_func(key) in radio.options
        except KeyError:
            continue
        if offered and key != radio.value:
            return radio.set_value(key)
    return None


def time_page(run: Path, store_url: str, cases: list[str]) -> dict:
    from streamlit.testing.v1 import AppTest

    from clinical_ui.settings import RUN_ENV, STORE_ENV
    from clinical_ui.state import CASE_ID, SESSION
    from clinical_ui.viewer import ORIGINAL

    os.environ[RUN_ENV] = str(run)
    os.environ[STORE_ENV] = store_url
    store = ReviewStore(store_url, bcrypt_rounds=4)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[SESSION] = sign_in(store, "bench", PASSWORD)
    at.run()
    opens, redraws = [], []
    for i, case_id in enumerate([cases[0], *cases]):
        at.switch_page("views/worklist.py").run()
        at.session_state[CASE_ID] = case_id
        at.switch_page("views/case_review.py")
        start = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - start
        if at.exception:
            raise RuntimeError(f"the case page failed on {case_id}: {at.exception[0].value}")
        if i == 0:
            continue  # warm-up
        opens.append(elapsed)
        window = _other_window(at, case_id, ORIGINAL)
        if window is not None:
            chosen = window.value
            start = time.perf_counter()
            at.run()
            redraws.append(time.perf_counter() - start)
            if at.exception:
                raise RuntimeError(f"the case page failed on {case_id}: {at.exception[0].value}")
            if at.radio(key=f"native_window_{case_id}").value != chosen:
                raise RuntimeError(f"the window preset of {case_id} did not change to {chosen}")
    store.close()
    return {"page_open": _summary(opens), "page_redraw": _summary(redraws) if redraws else None}


def _prepare(run: Path | None, dims: int, size: int, grid: int | None, cases: int, work: Path) -> Path:
    if run is not None:
        return run
    built = build_sample_run(work / f"bench-{dims}d", dims=dims, n_cases=cases, size=size, grid=grid)
    if not (built / "explanations").is_dir():
        write_placeholder_explanations(built)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run2d", type=Path, help="an existing 2D run (default: build one)")
    parser.add_argument("--run3d", type=Path, help="an existing 3D run (default: build one)")
    parser.add_argument("--size", type=int, default=32, help="image side of the runs built here (default 32)")
    parser.add_argument(
        "--grid", type=int, help="model grid side of the runs built here (default: --size, the image's side)"
    )
    parser.add_argument("--cases", type=int, default=80, help="cases of the runs built here (default 80)")
    parser.add_argument(
        "--dims", type=int, nargs="+", choices=(2, 3), default=[2, 3], help="which runs to time (default 2 3)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="cases timed per run (default 10)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="mmdx-bench-") as tmp:
        work = Path(tmp)
        # every run is built before Streamlit's AppTest starts any thread
        runs = {
            dims: _prepare(given, dims, args.size, args.grid, args.cases, work)
            for dims, given in ((2, args.run2d), (3, args.run3d))
            if dims in args.dims
        }
        for dims, run in runs.items():
            store_url = f"sqlite:///{work / f'review-{dims}d.sqlite'}"
            with ReviewStore(store_url, bcrypt_rounds=4) as store:
                store.add_user("bench", Role.CLINICIAN, PASSWORD, actor=Operator("benchmark"))
            cases = _cases(run, args.repeats)
            measured = {
                "run": str(run),
                **time_library(run, store_url, cases),
                **time_page(run, store_url, cases),
            }
            results["runs"][f"{dims}d"] = measured
            print(
                f"{dims}D run {run} (model grid {measured['grid']}, original image {measured['native_shape']}, "
                f"{measured['planes_drawn']} plane(s) drawn, {measured['image_reads_per_open']} image/mask "
                f"reads per open), {len(cases)} cases:"
            )
            keys = (
                "view",
                "view_session",
                "image_reads",
                "draw",
                "draw_model_input",
                "page_open",
                "page_redraw",
            )
            for key in keys:
                if measured.get(key):
                    m = measured[key]
                    print(
                        f"  {key:16s} median {m['median_ms']:8.1f} ms   p90 {m['p90_ms']:8.1f} ms   "
                        f"max {m['max_ms']:8.1f} ms"
                    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
