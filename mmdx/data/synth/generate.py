"""``synthesize_cohort``: writes the whole synthetic cohort directory."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydicom import config as pydicom_config

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.splits import patient_level_split
from mmdx.data.synth.cases import SynthOptions, age_band, observation_rows, plan_cases
from mmdx.data.synth.defects import plant_defects
from mmdx.data.synth.dicom import dicom_slices, save_dicom
from mmdx.data.synth.images import case_geometry, render_image, write_nifti
from mmdx.data.synth.model import (
    ALL_SITES,
    FEATURE_MODEL,
    TASK_POSITIVE,
    bayes_aurocs,
    generator_parameters,
    image_llr,
    logit,
    sigmoid,
    site_prevalence,
    tabular_llr,
    text_llr,
)
from mmdx.data.synth.notes import case_notes
from mmdx.data.synth.phi import PHI_CANARIES_FILE, cohort_canaries, phi_identity
from mmdx.workers import ignore_ctrl_c


def _write_case_image(args: tuple) -> dict:
    """Render and write one case's image and mask (runs in a worker process)."""
    plan, opts_dict, out_dir = args
    opts = SynthOptions(**opts_dict)
    out = Path(out_dir)
    rng = np.random.default_rng([opts.seed, 1, plan.index])
    site = ALL_SITES[plan.site]
    dims = plan.image_dims
    geometry = case_geometry(
        rng, site, dims, opts.size, plan.image_format, opts.fov_mm, opts.slice_spacing_mm, opts.slices
    )
    hu, mask = render_image(rng, site, geometry, plan.lesion, in_view=opts.fov_mm is not None)
    mask_rel = f"ground_truth/masks/{plan.case_id}.nii.gz"
    write_nifti(out / mask_rel, mask, geometry.affine, dtype=np.uint8)
    if plan.image_format == "nifti":
        rel = f"images/{plan.case_id}.nii.gz"
        write_nifti(out / rel, hu, geometry.affine)
    else:
        ids = {
            "seed_uid": f"{opts.seed}/{plan.case_id}",
            "study_date": plan.admit.strftime("%Y%m%d"),
            "accession": f"A{plan.index + 1:07d}",
            "site": plan.site,
            "patient_name": f"SYNTHETIC^{plan.patient_id}",
            "patient_id": plan.patient_id,
            "sex": plan.sex,
            "age": plan.age,
        }
        if opts.phi:
            identity = phi_identity(plan)
            ids.update(
                accession=identity["accession"],
                patient_name=f"{identity['family']}^{identity['given']}",
                phi=identity,
            )
        order = str(rng.choice(["ascending", "descending", "shuffled"], p=[0.5, 0.2, 0.3]))
        # the values are built valid by construction; pydicom's per-value checks would double the run time
        with pydicom_config.disable_value_validation():
            datasets = dicom_slices(hu, geometry, site, rng, ids, order)
            if dims == 2:
                rel = f"images/{plan.case_id}.dcm"
                save_dicom(datasets[0], out / rel)
            else:
                rel = f"images/{plan.case_id}"
                names = rng.permutation(len(datasets))
                for ds, name in zip(datasets, names, strict=True):
                    save_dicom(ds, out / rel / f"IM{int(name):04d}_{ds.SOPInstanceUID[-8:]}.dcm")
    return {"case_id": plan.case_id, "image": rel, "mask": mask_rel, "affine": geometry.affine.tolist()}


def synthesize_cohort(
    out: str | Path, opts: SynthOptions, progress: Callable[[int, int], None] | None = None
) -> dict:
    """Write a cohort to ``out`` and return a summary dict. ``out`` must not exist or be empty."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder or delete it first")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ground_truth" / "masks").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    catalogue = FeatureCatalogue.load()
    plans = plan_cases(opts)

    # images (the slow part) in worker processes; every case has its own random stream
    image_plans = [p for p in plans if p.has_image]
    opts_dict = {
        k: getattr(opts, k)
        for k in ("n_cases", "seed", "dims", "size", "defects", "workers", "phi")
        + ("fov_mm", "slice_spacing_mm", "slices", "mr_site", "mix_dims", "site_shift")
    }
    jobs = [(p, opts_dict, str(out)) for p in image_plans]
    images: dict[str, dict] = {}
    if opts.workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(max_workers=opts.workers, initializer=ignore_ctrl_c) as pool:
            for done, result in enumerate(pool.map(_write_case_image, jobs, chunksize=8), start=1):
                images[result["case_id"]] = result
                if progress:
                    progress(done, len(jobs))
    else:
        for done, job in enumerate(jobs, start=1):
            result = _write_case_image(job)
            images[result["case_id"]] = result
            if progress:
                progress(done, len(jobs))

    split = patient_level_split(
        [p.patient_id for p in plans], [p.label for p in plans], opts.split_fractions, seed=opts.seed
    )
    case_rows, obs_rows, note_lines, truth = [], [], [], []
    for plan, split_name in zip(plans, split, strict=True):
        rng = np.random.default_rng([opts.seed, 2, plan.index])
        rows, latest = observation_rows(plan, catalogue, rng)
        lines, statuses, phrases = case_notes(plan, rng, phi=opts.phi)
        obs_rows.extend(rows)
        note_lines.extend(lines)
        case_rows.append(
            {
                "case_id": plan.case_id,
                "patient_id": plan.patient_id,
                "label": plan.label,
                "split": split_name,
                "image": images[plan.case_id]["image"] if plan.has_image else "",
                "age": plan.age,
                "age_band": age_band(plan.age),
                "sex": plan.sex,
                "site": plan.site,
            }
        )
        if opts.phi:
            identity = phi_identity(plan)
            case_rows[-1].update(
                patient_name=f"{identity['given']} {identity['family']}",
                mrn=identity["mrn"],
                birth_date=identity["birth_date"],
                address=identity["address"],
                phone=identity["phone"],
                email=identity["email"],
            )
        terms = {
            "prior": logit(site_prevalence(plan.site)),
            "image": image_llr(plan.lesion) if plan.has_image else 0.0,
            "tabular": tabular_llr(catalogue, latest),
            "text": text_llr(statuses) if plan.has_text else 0.0,
        }
        truth.append(
            {
                "case_id": plan.case_id,
                "label": plan.label,
                "split": split_name,
                "site": plan.site,
                "modalities": {"image": plan.has_image, "tabular": plan.has_tabular, "text": plan.has_text},
                "lesion": plan.lesion if plan.has_image else None,
                "mask": images[plan.case_id]["mask"] if plan.has_image else None,
                "causal_features": [k for k, v in FEATURE_MODEL.items() if v[3] is not None and k in latest],
                "latest_causal_values": {
                    k: {"value": v[0], "unit": v[1]}
                    for k, v in latest.items()
                    if FEATURE_MODEL[k][3] is not None
                },
                "findings": statuses,
                "planted_phrases": phrases,
                "logit_terms": terms,
                "posterior": sigmoid(sum(terms.values())),
            }
        )

    defects: list[dict] = []
    if opts.defects:
        defects = plant_defects(out, opts, plans, case_rows, obs_rows, note_lines, truth)

    cases = pd.DataFrame(case_rows)
    cases.to_csv(out / "cases.csv", index=False)
    pd.DataFrame(obs_rows, columns=["case_id", "code", "value", "unit", "time"]).to_csv(
        out / "observations.csv", index=False
    )
    with (out / "notes.jsonl").open("w", encoding="utf-8") as fh:
        for line in note_lines:
            fh.write(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False))
            fh.write("\n")
    with (out / "ground_truth" / "truth.jsonl").open("w", encoding="utf-8") as fh:
        for record in truth:
            fh.write(json.dumps(record) + "\n")
    if defects:
        (out / "ground_truth" / "defects.json").write_text(json.dumps(defects, indent=1), encoding="utf-8")
    if opts.phi:
        canaries = cohort_canaries(plans, opts)
        (out / PHI_CANARIES_FILE).write_text(json.dumps({"canaries": canaries}, indent=1), encoding="utf-8")

    aurocs = bayes_aurocs(truth)
    spec = {
        "name": f"synthetic-{'2d' if opts.dims == 2 else '3d'}-{opts.n_cases}-seed{opts.seed}",
        "version": "1.0",
        "description": (
            "Synthetic chest cohort written by mmdx synth: CT-like images (DICOM series and NIfTI), "
            "LOINC-coded observations in site-specific units, and clinical notes with affirmed and negated "
            "findings. The Bayes-optimal posterior of every case is in ground_truth/truth.jsonl."
        ),
        "task": {"label": "label", "positive": TASK_POSITIVE, "type": "binary"},
        "subgroups": ["sex", "age_band", "site"],
        # a cohort mixing 2D and 3D images declares no dimensionality: the preprocessing plan handles it
        "image": {"modality": "CT"} if opts.mix_dims > 0 else {"dims": opts.dims, "modality": "CT"},
        "bayes_auroc": aurocs["all"],
        "modality_auroc": {k: aurocs[k] for k in ("image", "tabular", "text")},
        "generator": {
            "seed": opts.seed,
            "n_cases": opts.n_cases,
            "dims": opts.dims,
            "size": opts.size,
            "defects": opts.defects,
            **({"phi": True} if opts.phi else {}),
            **opts.variety(),
            **generator_parameters(),
        },
    }
    if opts.site_shift:  # the prior of every posterior in truth.jsonl is the second site's
        spec["generator"]["prevalence"] = site_prevalence(plans[0].site)
    (out / "cohort.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=110), encoding="utf-8")
    return {
        "path": str(out),
        "cases": len(cases),
        "images": len(images),
        "observations": len(obs_rows),
        "notes": len(note_lines),
        "defects": len(defects),
        "bayes_auroc": aurocs["all"],
        "modality_auroc": spec["modality_auroc"],
    }
