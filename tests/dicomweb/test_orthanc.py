"""The throwaway Orthanc of the tests: loopback only, authentication on, storage removed on stop."""

from __future__ import annotations

import os
import subprocess

import requests

from mmdx.dicomweb.orthanc import TemporaryOrthanc, find_dicomweb_plugin


def test_server_is_private_and_cleans_up(orthanc_server) -> None:
    assert find_dicomweb_plugin() is not None
    with TemporaryOrthanc(password="s3cret-pw") as pacs:
        root = pacs.root
        assert pacs.url.startswith("http://127.0.0.1:")
        assert requests.get(f"{pacs.dicomweb_url}/studies", timeout=10).status_code == 401
        answer = requests.get(f"{pacs.dicomweb_url}/studies", auth=(pacs.username, "s3cret-pw"), timeout=10)
        assert answer.status_code == 200 and answer.json() == []
        if os.geteuid() == 0:  # as root the server runs as Debian's unprivileged 'orthanc' user
            owner = subprocess.run(
                ["ps", "-o", "user=", "-C", "Orthanc"], capture_output=True, text=True, check=False
            ).stdout.split()
            assert owner and set(owner) == {"orthanc"}
    assert not root.exists()
    assert pacs.url is None
