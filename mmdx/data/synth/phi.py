"""Identified cohorts (``--phi``): canary values in every identifying field that de-identification must
remove, and the list of them in ``ground_truth/phi_canaries.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mmdx.data.synth.cases import CasePlan, SynthOptions
from mmdx.data.synth.dicom import synthetic_uid
from mmdx.errors import MmdxError

PHI_CANARIES_FILE = "ground_truth/phi_canaries.json"


def phi_identity(plan: CasePlan) -> dict[str, str]:
    """The canary identity of a case's patient: names, identifiers, contact details and dates.

    Every value is recognisable (``CANARY_...``, ``CANARYMRN...``, a fixed phone pattern, an example.org
    e-mail), so a byte scan can tell whether any of them survived. Values depend only on the patient number
    and the case index, never on a random stream.
    """
    n, i = plan.patient_number, plan.index + 1
    birth = pd.Timestamp(year=2024 - plan.age, month=1 + n % 12, day=1 + n % 28)
    return {
        "family": f"CANARY_NAME_{n:05d}",
        "given": f"CANARY_GIVEN_{n:05d}",
        "mrn": f"CANARYMRN{n:06d}",
        "other_id": f"CANARYOPID{n:06d}",
        "birth_date": birth.strftime("%Y-%m-%d"),
        "birth_date_written": birth.strftime("%d/%m/%Y"),
        "address": f"{10 + n % 890} CANARY_STREET_{n:05d} Road, Springfield",
        "phone": f"(555) {100 + n % 900:03d}-{n % 10000:04d}",
        "email": f"canary.name.{n:05d}@example.org",
        "doctor": f"CANARY_DOC_{n:05d}",
        "operator": f"CANARY_OP_{n:05d}",
        "accession": f"CANARYACC{i:06d}",
        "study_id": f"CANARYSTD{i:06d}",
        "request_id": f"CANARYREQ{i:06d}",
        "station": f"CANARYSTN{n:05d}",
        "device_serial": f"CANARYSN{n:06d}",
        "private": f"CANARY_PRIVATE_{n:05d}",
        "visit_date": plan.admit.strftime("%m/%d/%Y"),
        "appointment_date": (plan.admit + pd.Timedelta(days=14)).strftime("%d %B %Y"),
    }


def phi_sentences(identity: dict[str, str], j: int) -> list[str]:
    """Sentences naming the patient, written at the start of the ``j``-th note of a case."""
    if j == 0:
        return [
            f"Patient {identity['given']} {identity['family']} (MRN {identity['mrn']}), date of birth "
            f"{identity['birth_date_written']}, seen by Dr {identity['doctor']} on {identity['visit_date']}.",
            f"Contact: {identity['phone']}, {identity['email']}.",
            f"Home address: {identity['address']}.",
        ]
    return [
        f"Reviewed with Dr. {identity['doctor']}; {identity['family']} is aware of the plan.",
        f"Next appointment {identity['appointment_date']}, call {identity['phone']} to rearrange.",
    ]


def cohort_canaries(plans: list[CasePlan], opts: SynthOptions) -> list[dict]:
    """Every canary of an identified cohort: ``{"value", "kind"}``, one entry per distinct value."""
    found: dict[str, str] = {}
    for plan in plans:
        identity = phi_identity(plan)
        for kind, value in identity.items():
            if kind == "address":
                value = value.split()[1]  # the street name: the house number alone is not distinctive
            found.setdefault(value, kind)
        found.setdefault(identity["birth_date"].replace("-", ""), "birth_date_dicom")
        found.setdefault(plan.case_id, "case_id")
        found.setdefault(plan.patient_id, "patient_id")
        if plan.has_image and plan.image_format == "dicom":
            seed_uid = f"{opts.seed}/{plan.case_id}"
            for kind in ("study", "series", "frame", "patient"):
                found.setdefault(synthetic_uid(seed_uid, kind, 0), f"{kind}_uid")
    return [{"value": value, "kind": kind} for value, kind in sorted(found.items())]


def phi_canaries(root: str | Path) -> list[dict]:
    """The canaries of an identified cohort written with ``phi=True`` (``[{"value", "kind"}]``).

    Raises :class:`MmdxError` when the cohort has no canary list (it was not written with ``--phi``).
    """
    path = Path(root) / PHI_CANARIES_FILE
    if not path.is_file():
        raise MmdxError(f"{path} not found: only a cohort written by 'mmdx synth --phi' lists its canaries")
    return list(json.loads(path.read_text(encoding="utf-8"))["canaries"])
