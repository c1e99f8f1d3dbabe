"""``mmdx synth``: write a synthetic cohort whose Bayes-optimal posterior is known."""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.errors import MmdxError

HELP = """\
Write a synthetic cohort in the mmdx cohort format: CT-like chest images (DICOM series with shuffled
InstanceNumbers, and NIfTI with non-identity affines; 2D slices with --dims 2), LOINC-coded vital signs and
labs in long format with units that differ by site, clinical notes with affirmed and negated findings,
demographics, per-case missing modalities, lesion masks and the exact Bayes posterior of every case
(ground_truth/truth.jsonl; bayes_auroc in cohort.yaml). --defects plants broken inputs (missing, truncated
and mixed DICOM, a missing slice, a path escaping the cohort, duplicate IDs, implausible values, unknown
units, a NIfTI qform/sform mismatch, a malformed notes line, ...) listed in ground_truth/defects.json.
--site-shift writes a second hospital for external validation (another prevalence, shifted features,
another scanner; see 'mmdx evaluate --name'). --fov, --slice-spacing, --slices, --mr-site and --mix-dims
vary the images (a targeted field of view,
anisotropic volumes, an MR-like site in arbitrary units, 2D slices among 3D volumes); without them the
cohort is the same, byte for byte, as before they existed. --phi writes an *identified* cohort for testing
de-identification: patient names, MRNs, dates of birth, addresses, phone numbers and e-mails in every
identifying DICOM attribute (nested sequences and a private block included), in extra columns of cases.csv
and in the notes, all recognisable canary values listed in ground_truth/phi_canaries.json. Run 'mmdx deid'
on it before anything else.
--export fhir|meds|omop also writes the cohort in that format under OUT/export/ (see mmdx import).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synth", help="write a synthetic cohort", description=HELP)
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--cases", type=int, default=600, help="number of cases (default 600)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--dims", type=int, choices=[2, 3], default=3, help="2D slices or 3D volumes (default 3)")
    p.add_argument("--size", type=int, default=32, help="voxels per image axis (default 32)")
    p.add_argument("--defects", action="store_true", help="plant broken inputs, each with its reason code")
    p.add_argument("--workers", type=int, default=2, help="processes writing images (default 2)")
    p.add_argument(
        "--export",
        action="append",
        choices=["fhir", "meds", "omop"],
        default=[],
        help="also write the cohort as FHIR R4 NDJSON, a MEDS dataset or OMOP CDM tables (CSV + load.sql) "
        "under OUT/export/, with the case list and label file the importers take; repeatable",
    )
    p.add_argument(
        "--wado-url",
        default="http://127.0.0.1:8042/dicom-web",
        help="the DICOMweb (WADO-RS) base URL the exported FHIR and OMOP image references name",
    )
    p.add_argument(
        "--fov",
        type=float,
        metavar="MM",
        help="in-plane field of view of every site in mm, centred on a lung (default: each site's 320-380 mm)",
    )
    p.add_argument(
        "--slice-spacing",
        type=float,
        metavar="MM",
        help="distance between slices in mm (anisotropic volumes; default: the in-plane spacing times a site factor)",
    )
    p.add_argument("--slices", type=int, help="slices per 3D volume (default: --size)")
    p.add_argument(
        "--mr-site",
        action="store_true",
        help="add an MR-like site: DICOM with Modality MR, signal in arbitrary units scaled per image",
    )
    p.add_argument(
        "--mix-dims",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of images written with the other dimensionality (2D slices in a 3D cohort); default 0",
    )
    p.add_argument(
        "--site-shift",
        action="store_true",
        help="every case from a second hospital: outcome prevalence 0.20 instead of 0.35, spo2, creatinine "
        "and glucose shifted in both classes, troponin measured more often, its own scanner; the shift is "
        "listed in cohort.yaml (generator.site_shift) and the Bayes limit stays known (for external validation)",
    )
    p.add_argument(
        "--phi",
        action="store_true",
        help="fill identifying fields with canary PHI values (for de-identification tests)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        opts = SynthOptions(
            n_cases=args.cases,
            seed=args.seed,
            dims=args.dims,
            size=args.size,
            defects=args.defects,
            workers=max(1, args.workers),
            phi=args.phi,
            fov_mm=args.fov,
            slice_spacing_mm=args.slice_spacing,
            slices=args.slices,
            mr_site=args.mr_site,
            mix_dims=args.mix_dims,
            site_shift=args.site_shift,
        )
    except ValueError as exc:
        raise MmdxError(str(exc)) from None
    start = time.perf_counter()
    with tqdm(total=None, desc="images", unit="case", leave=False, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        summary = synthesize_cohort(args.out, opts, progress=progress)
    elapsed = time.perf_counter() - start
    auroc = summary["modality_auroc"]
    print(
        f"wrote {summary['cases']} cases ({summary['images']} images, {summary['observations']} observations, "
        f"{summary['notes']} notes) to {summary['path']} in {elapsed:.1f} s"
    )
    print(
        f"Bayes-optimal test AUROC {summary['bayes_auroc']:.3f}; one modality alone: image {auroc['image']:.3f}, "
        f"tabular {auroc['tabular']:.3f}, text {auroc['text']:.3f}"
    )
    if args.phi:
        print(
            "identified cohort: canary PHI listed in ground_truth/phi_canaries.json; de-identify it with 'mmdx deid'"
        )
    if summary["defects"]:
        print(f"planted {summary['defects']} defects (see ground_truth/defects.json)")
    if args.export:
        from mmdx.data.synth.export import export_cohort

        exported = export_cohort(args.out, args.export, wado_url=args.wado_url)
        print(f"exported as {', '.join(args.export)} to {args.out}/export/ (case list: export/cases.csv)")
        for fmt in args.export:
            print(f"  {fmt}: " + ", ".join(f"{k} {v}" for k, v in exported[fmt].items()))
    return 0
