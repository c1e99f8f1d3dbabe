"""Time from opening a case to its fully drawn page, server side, for a 2D and a 3D run.

Three measurements per case, each repeated over several cases of each run:

* ``view``: :func:`mmdx.review.build_case_view`: the principal check, the ``open_case`` event, the
  prediction, the explanation files, the case's cohort files and the image moved to the model grid;
  ``view_session``: the same with the cohort's tables read once per session (:func:`mmdx.review.open_cohort`),
  as the dashboard does;
* ``draw``: what the page computes from the view: the image slice with overlay and contour as PNG, the
  vital-signs table and the highlighted note as HTML;
* ``page_open`` and ``page_redraw``: the whole case page under Streamlit's AppTest (no browser, no
  network): opening it from another page (builds the view), and a redraw after choosing another window
  preset (reuses the view kept in the session).

By default two tiny runs are built first (2D 32², 3D 32³, one epoch, placeholder explanations); pass
``--run2d``/``--run3d`` to time existing runs (e.g. with real ``mmdx explain`` output).

    python benchmarks/dashboard_render.py --repeats 10 --json dashboard_render.json
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

from mmdx.review import (
    build_case_view,
    encode_png,
    open_cohort,
    open_review_context,
    sign_in,
    window_presets,
)
from mmdx.review.formatting import tabular_table_html
from mmdx.review.highlight import highlight_note
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


def time_library(run: Path, store_url: str, cases: list[str]) -> dict:
    store = ReviewStore(store_url, bcrypt_rounds=4)
    context = open_review_context(run, store)
    session = sign_in(store, "bench", PASSWORD)
    window = window_presets(context.image_config)["lung"]
    build_case_view(context, session.principal, cases[0])  # first open pays one-time imports
    cohort = open_cohort(context, session.principal)
    views, session_views, draws = [], [], []
    for case_id in cases:
        start = time.perf_counter()
        build_case_view(context, session.principal, case_id)
        views.append(time.perf_counter() - start)
        start = time.perf_counter()
        view = build_case_view(context, session.principal, case_id, cohort=cohort)
        session_views.append(time.perf_counter() - start)
        start = time.perf_counter()
        if view.image is not None:
            encode_png(view.image.render(view.image.default_slice(), window, 0.5))
        tabular_table_html(view.tabular)
        if view.note_text:
            highlight_note(view.note_text, view.note_spans)
        draws.append(time.perf_counter() - start)
    shape = list(context.image_config.shape) if context.image_config else None
    store.close()
    return {
        "grid": shape,
        "view": _summary(views),
        "view_session": _summary(session_views),
        "draw": _summary(draws),
    }


def time_page(run: Path, store_url: str, cases: list[str]) -> dict:
    from streamlit.testing.v1 import AppTest

    from clinical_ui.settings import RUN_ENV, STORE_ENV
    from clinical_ui.state import CASE_ID, SESSION

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
        window = [r for r in at.radio if r.label == "Window / level"]
        if i == 0:
            continue  # warm-up
        opens.append(elapsed)
        if window:
            window[0].set_value("bone")
            start = time.perf_counter()
            at.run()
            redraws.append(time.perf_counter() - start)
    store.close()
    return {"page_open": _summary(opens), "page_redraw": _summary(redraws) if redraws else None}


def _prepare(run: Path | None, dims: int, size: int, cases: int, work: Path) -> Path:
    if run is not None:
        return run
    built = build_sample_run(work / f"bench-{dims}d", dims=dims, n_cases=cases, size=size)
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
    parser.add_argument("--cases", type=int, default=80, help="cases of the runs built here (default 80)")
    parser.add_argument("--repeats", type=int, default=10, help="cases timed per run (default 10)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="mmdx-bench-") as tmp:
        work = Path(tmp)
        # every run is built before Streamlit's AppTest starts any thread
        runs = {
            dims: _prepare(given, dims, args.size, args.cases, work)
            for dims, given in ((2, args.run2d), (3, args.run3d))
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
            print(f"{dims}D run {run} (model grid {measured['grid']}), {len(cases)} cases:")
            for key in ("view", "view_session", "draw", "page_open", "page_redraw"):
                if measured.get(key):
                    m = measured[key]
                    print(
                        f"  {key:12s} median {m['median_ms']:8.1f} ms   p90 {m['p90_ms']:8.1f} ms   "
                        f"max {m['max_ms']:8.1f} ms"
                    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
