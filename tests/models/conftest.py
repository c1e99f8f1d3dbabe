"""Shared settings of the model tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    # The tensors here are tiny: a second thread gains little, and on a busy two-core machine spinning
    # threads slow these tests down by an order of magnitude.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
