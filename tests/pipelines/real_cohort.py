"""A cohort of real files that mmdx did not write: pydicom's and pydicom-data's CT, MR and CR images,
nibabel's test volumes, LOINC-coded values in the units and spellings of real extracts, and notes.

Several images differ in field of view, resolution, modality, transfer syntax and dimensionality; some
cannot be used at all (a JPEG Extended file that does not decode, a 4D NIfTI, a volume with NaN voxels, a
series folder whose slices disagree). Labels follow a lab value and a note phrase, so a model has
something to learn; the images carry no label information.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nibabel.testing import data_path as nibabel_data
from pydicom.data import get_testdata_file

#: (image file in the cohort, source: a pydicom test file name or a nibabel test file path)
DICOM_FILES = [
    "CT_small.dcm",  # CT, 128 x 0.66 mm
    "MR_small.dcm",  # MR, 64 x 0.31 mm: a 20 mm field of view
    "MR_small_RLE.dcm",  # the same MR image, RLE Lossless
    "MR_small_jp2klossless.dcm",  # and JPEG 2000
    "693_UNCI.dcm",  # CT, 512 x 0.48 mm (pydicom-data)
    "693_J2KI.dcm",  # the same CT, lossy JPEG 2000
    "MR2_UNCI.dcm",  # MR, 1024 x 0.2 mm, oriented PIR
    "RG1_UNCI.dcm",  # CR, MONOCHROME1, no usable PixelSpacing
    "RG3_UNCR.dcm",  # CR, MONOCHROME1
    "JPEG-lossy.dcm",  # NM, JPEG Extended that no installed decoder decodes correctly
]
NIFTI_FILES = [
    "anatomical.nii",  # a 3D head volume, 2 mm, LAS
    "reoriented_anat_moved.nii",  # 3D, 4 mm, RAS
    "example4d.nii.gz",  # 4D: refused
    "resampled_anat_moved.nii",  # NaN voxels: refused
]
SERIES = ["dicomdirtests/98892001/CT5N", "dicomdirtests/98892003/MR700"]  # a small CT stack; a mixed series


def _pydicom_folder(relative: str) -> Path:
    return Path(get_testdata_file("CT_small.dcm")).parent / relative


def real_file_cohort(out: Path, cases_per_image: int = 2) -> Path:
    """Write the cohort to ``out``; each image appears in ``cases_per_image`` cases (copied files)."""
    images = out / "images"
    images.mkdir(parents=True)
    sources: list[tuple[str, Path]] = [(name, Path(get_testdata_file(name))) for name in DICOM_FILES]
    sources += [(name, Path(nibabel_data) / name) for name in NIFTI_FILES]
    sources += [(Path(s).name, _pydicom_folder(s)) for s in SERIES]
    rows, observations, notes = [], [], []
    number = 0
    for copy in range(cases_per_image):
        for name, source in sources:
            number += 1
            case_id = f"R{number:03d}"
            target = images / f"{copy}_{name}"
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy(source, target)
            label = number % 2
            split = ("train", "train", "val", "train", "test")[number % 5]
            rows.append(
                f"{case_id},P{number:03d},{label},{split},images/{target.name},{40 + number},{'FM'[number % 2]}"
            )
            crp = ("<0.5", "3,1", "12.5") if label == 0 else ("48", "95.2", ">300")
            observations += [
                f'{case_id},1988-5,"{crp[number % 3]}",mg/L,2024-03-0{1 + number % 8}T08:00:00Z',  # "3,1" is quoted
                f"{case_id},6690-2,{6.5 + 5 * label + (number % 4) * 0.3:.1f},K/uL,2024-03-01T09:00:00Z",
                f"{case_id},777-3,{220 + number},x10^9/L,2024-03-01T09:00:00Z",
                f"{case_id},8310-5,{37.0 + 1.2 * label:.1f},C,2024-03-01T10:00:00Z",
                f"{case_id},2160-0,{70 + number},\u03bcmol/L,2024-03-01T09:00:00Z",
                f"{case_id},2339-0,{5.4 + 0.1 * (number % 5):.1f},mmol/L,2024-03-01T09:00:00Z",
            ]
            finding = "Consolidation in the right lower lobe." if label else "No consolidation."
            notes.append(
                {
                    "case_id": case_id,
                    "text": f"Seen on the ward round. {finding} Cough for {2 + number % 4} days.",
                    "note_type": "progress note",
                    "time": "2024-03-01T12:00:00Z",
                }
            )
    (out / "cohort.yaml").write_text(
        "name: real-files\nversion: '1'\n"
        "description: pydicom, pydicom-data and nibabel test images with hand-written values and notes\n"
        "task: {label: label, positive: pneumonia, type: binary}\n"
        "image: {modality: MR}\n",  # the NIfTI volumes are MR; DICOM files carry their own Modality
        encoding="utf-8",
    )
    (out / "cases.csv").write_text(
        "case_id,patient_id,label,split,image,age,sex\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    (out / "observations.csv").write_text(
        "case_id,code,value,unit,time\n" + "\n".join(observations) + "\n", encoding="utf-8"
    )
    (out / "notes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes), encoding="utf-8")
    return out
