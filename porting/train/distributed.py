"""Distributed setup and the collectives training needs (``torchrun``)."""

from __future__ import annotations

import os

import numpy as np
import torch


def torch_distributed():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def setup_distributed(device_arg: str) -> tuple[torch.device, int, int, int]:
    """``(device, rank, world, local_rank)``; torchrun's env:// group (NCCL on CUDA, Gloo on
    CPU)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    if device_arg.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch.cuda.is_available() is False")
    device = torch.device(f"cuda:{local}" if device_arg == "cuda" and world > 1 else device_arg)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if world > 1:
        return device, dist.get_rank(), dist.get_world_size(), local
    return device, 0, 1, 0


def comm_device(device: torch.device) -> torch.device:
    d = torch_distributed()
    return device if d is not None and d.get_backend() == "nccl" else torch.device("cpu")


def all_sum(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    d = torch_distributed()
    if d is None:
        return t
    c = t.to(comm_device(device))
    d.all_reduce(c)
    return c.to(t.device)


def barrier() -> None:
    d = torch_distributed()
    if d is not None:
        d.barrier()


def seed_for(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]
               % (2**63 - 1))


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


