"""Device selection, mixed precision and DistributedDataParallel set-up.

Several processes (``torchrun --nproc_per_node N``) run the same training code: ``torchrun`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` joins the process group with NCCL on GPUs and
gloo on CPUs. A single process is the same code path with a world of one.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mmdx.errors import MmdxError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.barrier()


def resolve_device(setting: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: the local CUDA device when one is available, else the CPU."""
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise MmdxError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


def init_distributed(device_setting: str = "auto") -> DistContext:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); otherwise a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``auto`` or ``bf16``); full precision on the CPU and for ``fp32``."""
    use_bf16 = device.type == "cuda" and precision in ("auto", "bf16")
    if precision == "bf16" and device.type != "cuda":
        raise MmdxError("train.precision 'bf16' needs a CUDA device; use 'auto' or 'fp32' on the CPU")
    if use_bf16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
