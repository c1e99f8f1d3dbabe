"""``mmdx export --dicomweb`` into a real Orthanc PACS, read back over QIDO-RS/WADO-RS and validated."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import highdicom as hd
import pandas as pd
import pydicom
import pytest
from pydicom.uid import (
    Comprehensive3DSRStorage,
    ParametricMapStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from mmdx.bundle import MANIFEST, sha256_file
from mmdx.dicomweb.connection import (
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_USER,
    AuthKind,
    DicomwebSettings,
    Secret,
    open_client,
)
from mmdx.explain.artifacts import case_folder_name
from mmdx.export.dciodvfy import verify
from mmdx.export.objects import DISCLAIMER
from mmdx.export.source import read_source_headers, source_image_path
from pipelines.cli import main


def _image(cohort: Path, case_id: str) -> Path:
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    return source_image_path(cohort, cases.loc[case_id, "image"])


def _texts(items) -> list[str]:
    """Every TEXT value of an SR content tree."""
    out = []
    for item in items:
        if "TextValue" in item:
            out.append(str(item.TextValue))
        if "ContentSequence" in item:
            out.extend(_texts(item.ContentSequence))
    return out


@pytest.mark.slow
def test_export_round_trip_through_orthanc(
    explained, pacs_environment, dciodvfy, tmp_path: Path, capsys: pytest.CaptureFixture, caplog
) -> None:
    pacs = pacs_environment
    cohort, run = explained.cohort, explained.path
    for case in explained.dicom:  # the source studies are in the PACS first, as in a hospital
        image = _image(cohort, case)
        pacs.upload([image] if image.is_file() else sorted(image.glob("*.dcm")))

    caplog.set_level(logging.DEBUG)
    code = main(
        ["-v", "export", str(run), "--dicomweb", pacs.dicomweb_url, "--segmentation", "--overlay", "--quiet"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    n = len(explained.dicom)
    assert f"exported {n} case(s), {4 * n} object(s)" in out.out
    # the password travelled in a header only: no output, log record or message holds it
    logged = out.out + out.err + caplog.text + "".join(str(r.args) for r in caplog.records)
    assert pacs.password not in logged

    client = open_client(
        DicomwebSettings(pacs.dicomweb_url, AuthKind.BASIC, pacs.username, Secret(pacs.password))
    )
    bundle_hash = sha256_file(run / "bundle" / MANIFEST)
    for case in explained.dicom:
        sources = read_source_headers(_image(cohort, case))
        study = str(sources[0].StudyInstanceUID)
        explanation = json.loads(
            (run / "explanations" / case_folder_name(case) / "explanation.json").read_text()
        )
        # QIDO-RS: the study now holds the source series and four result series
        series = client.search_for_series(study, fields=["SeriesDescription"])
        described = {s["0020000E"]["Value"][0]: s.get("0008103E", {}).get("Value", [""])[0] for s in series}
        results = {uid: text for uid, text in described.items() if uid != str(sources[0].SeriesInstanceUID)}
        assert len(results) == 4
        assert all(text.endswith(DISCLAIMER) for text in results.values())
        # WADO-RS: every object comes back, is valid for dciodvfy and carries RESEARCH qualification
        retrieved: dict[str, pydicom.Dataset] = {}
        for series_uid in results:
            for instance in client.search_for_instances(study, series_uid):
                sop = instance["00080018"]["Value"][0]
                dataset = client.retrieve_instance(study, series_uid, sop)
                path = tmp_path / f"{case}_{sop}.dcm"
                dataset.save_as(path, enforce_file_format=True)
                report = verify(path)
                assert report.errors == [], f"{dataset.SOPClassUID.name}: {report.errors}"
                assert dataset.ContentQualification == "RESEARCH"
                # the source study's pseudonymous identifiers, nothing else identifying
                for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber"):
                    assert dataset[keyword].value == sources[0][keyword].value
                for keyword in ("InstitutionName", "OperatorsName", "PerformingPhysicianName"):
                    assert keyword not in dataset
                retrieved[str(dataset.SOPClassUID)] = dataset
        pm = hd.pm.ParametricMap.from_dataset(retrieved[ParametricMapStorage])
        assert pm.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
        assert int(pm.NumberOfFrames) == len(sources)
        seg = hd.seg.Segmentation.from_dataset(retrieved[SegmentationStorage])
        assert seg.SegmentationType == "FRACTIONAL"
        assert SecondaryCaptureImageStorage in retrieved  # the overlay
        sr_dataset = retrieved[Comprehensive3DSRStorage]
        sr = hd.sr.Comprehensive3DSR.from_dataset(sr_dataset)
        (group,) = sr.content.get_image_measurement_groups()
        values = {m.name.value: m.value for m in group.get_measurements()}
        assert values["PROB"] == pytest.approx(explanation["probability"])
        assert values["THRESHOLD"] == pytest.approx(explanation["threshold"])
        for modality in ("image", "tabular", "text"):
            if explanation["presence"][modality]:
                assert values[f"SHAPLEY-{modality.upper()}"] == pytest.approx(
                    explanation["shapley"][modality]
                )
        (decision,) = group.get_qualitative_evaluations()
        assert decision.value.meaning == ("Positive" if explanation["predicted"] else "Negative")
        texts = " ".join(_texts(sr_dataset.ContentSequence))
        assert bundle_hash in texts and explanation["explanation_version"] in texts
        evidence = {
            item.ReferencedSOPInstanceUID
            for study_item in sr_dataset.CurrentRequestedProcedureEvidenceSequence
            for series_item in study_item.ReferencedSeriesSequence
            for item in series_item.ReferencedSOPSequence
        }
        assert {s.SOPInstanceUID for s in sources} | {pm.SOPInstanceUID} <= evidence


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        ([], {ENV_USER: "mmdx", ENV_PASSWORD: "wrong-secret-4711"}, "refused the request (HTTP 401)"),
        (["--auth", "bearer"], {ENV_TOKEN: "token-secret-0815"}, "refused the request (HTTP 401)"),
        (["--auth", "basic", "--user", "mmdx"], {}, "needs a password"),
    ],
)
def test_refused_credentials_are_reported_and_never_shown(
    explained_2d, pacs, arguments, environment, expected, monkeypatch, capsys, caplog
) -> None:
    for name in (ENV_USER, ENV_PASSWORD, ENV_TOKEN):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    code = main(
        ["-v", "export", str(explained_2d.path), "--dicomweb", pacs.dicomweb_url, "--quiet", *arguments]
    )
    out = capsys.readouterr()
    assert code == 2
    assert expected in out.err
    for secret in environment.values():
        if secret != "mmdx":
            assert secret not in out.out + out.err + caplog.text


def test_password_file_is_read_and_unreachable_server_named(
    explained_2d, tmp_path: Path, monkeypatch, capsys
) -> None:
    secret = tmp_path / "password"
    secret.write_text("file-secret-1234\n")
    secret.chmod(0o600)
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    code = main(
        [
            "export",
            str(explained_2d.path),
            "--dicomweb",
            "http://127.0.0.1:9/dicom-web",
            "--quiet",
            "--user",
            "someone",
            "--password-file",
            str(secret),
            "--timeout",
            "5",
        ]
    )
    out = capsys.readouterr()
    assert code == 2
    assert "cannot connect to the DICOMweb server http://127.0.0.1:9/dicom-web" in out.err
    assert "file-secret-1234" not in out.out + out.err
