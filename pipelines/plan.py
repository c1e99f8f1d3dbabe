"""``mmdx plan``: the image fingerprint of a cohort and the preprocessing plan a training run would fit."""

from __future__ import annotations

import argparse
import json
import sys

HELP = """\
Measure the fingerprint of a cohort's training images (dimensionality, spacing, shape and field of view per
axis, orientation, modality, intensity percentiles) and print the image preprocessing plan that 'mmdx train'
would derive from it with CONFIG (default: every image setting auto, the default voxel budgets): the grid's
spacing and shape, chosen so that the median field of view fills the grid within the config's voxel
budget, and the intensity normalisation per modality. Every image is checked against the plan; the
warnings (IMAGE_FOV_MISMATCH, IMAGE_FOV_CROPPED, IMAGE_DIMS_DROPPED, IMAGE_CENTRE_SLICE,
IMAGE_INTENSITY_MISMATCH, IMAGE_MODALITY_UNSEEN) are counted with examples. --bundle shows how a trained
model's own plan fits the cohort instead. Nothing is trained.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="print a cohort's image fingerprint and preprocessing plan",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("cohort", help="cohort directory")
    p.add_argument("--config", help="experiment config (YAML) whose data.image settings to plan with")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value",
    )
    p.add_argument(
        "--bundle", help="a trained bundle or run directory: check its own plan against the cohort"
    )
    p.add_argument("--json", metavar="FILE.json", help="write the fingerprint, plan and warnings as JSON")
    p.add_argument("--workers", type=int, default=2, help="processes decoding images (default 2)")
    p.add_argument("--show", type=int, default=10, help="list at most this many image warnings (default 10)")


def _axes(values: list[float] | None, unit: str = "") -> str:
    return "-" if not values else " x ".join(f"{v:.3g}" for v in values) + unit


def print_plan(result: dict, show: int = 10, out=None) -> None:
    """Human-readable fingerprint and plan of :meth:`mmdx.workflows.plan.PlanResult.to_dict`."""
    out = out or sys.stdout
    print(
        f"cohort {result['cohort']['name']} ({result['cohort']['path']}), plan from {result['source']}",
        file=out,
    )
    fp = result["fingerprint"]
    if fp is not None:
        dims = fp["dims"]
        print(
            f"fingerprint of {fp['n_images']} training images: {dims['2d']['n_images']} 2D, "
            f"{dims['3d']['n_images']} 3D; orientation "
            + ", ".join(f"{k} {v}" for k, v in fp["orientation"].items()),
            file=out,
        )
        for key, geometry in fp["geometry"].items():
            print(
                f"  as {key.upper()} ({geometry['n_images']} images): field of view median "
                f"{_axes(geometry['fov_mm']['median'], ' mm')} (p10 {_axes(geometry['fov_mm']['p10'])}, p90 "
                f"{_axes(geometry['fov_mm']['p90'])}); spacing median {_axes(geometry['spacing']['median'], ' mm')}"
                + (f"; shape median {_axes(geometry['shape']['median'])}" if "shape" in geometry else ""),
                file=out,
            )
        for family, entry in fp["modalities"].items():
            codes = ", ".join(f"{k} {v}" for k, v in entry["codes"].items())
            source = ", ".join(f"{k} {v}" for k, v in entry["source"].items())
            pct = ", ".join(f"{k} {v:g}" for k, v in entry["percentiles_median"].items())
            print(
                f"  {family}: {entry['n_images']} images ({codes}; modality from {source}); values {pct}",
                file=out,
            )
    print(f"plan: {result['description']}", file=out)
    origin = result["plan"].get("origin") or {}
    if origin:
        print("  from " + ", ".join(f"{k}: {v}" for k, v in origin.items()), file=out)
    for note in result["plan"].get("notes") or []:
        print(f"  note: {note}", file=out)
    codes = result["warnings_by_code"]
    if not codes:
        print("every image fits the plan", file=out)
        return
    print(
        "image warnings: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1])),
        file=out,
    )
    for item in result["warnings"][:show]:
        print(f"  {item['case_id']}: {item['code']}: {item['message']}", file=out)
    if len(result["warnings"]) > show:
        print(f"  ... and {len(result['warnings']) - show} more (--show N, --json FILE)", file=out)


def run(args: argparse.Namespace) -> int:
    from mmdx.workflows.plan import plan_cohort

    result = plan_cohort(
        args.cohort, args.config, args.overrides, args.bundle, workers=args.workers
    ).to_dict()
    print_plan(result, args.show)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)
        print(f"written to {args.json}")
    return 0
