"""Rank, world size and device of this process: one process, or one of N started by `torchrun`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; then the process group is initialised (nccl on CUDA, gloo on
CPU), each rank takes every N-th sample, and torchmetrics merges metric states across ranks in `compute`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from tfbench.errors import TfbenchError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the run. `device` is the concrete torch device string it works on."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (a no-op for a single process)."""
        if self.is_distributed:
            torch_dist.barrier()


def init_distributed(device: str) -> DistributedContext:
    """The context of this process; under torchrun, joins the process group and picks cuda:LOCAL_RANK.

    `device` is the already resolved `--device` ("cpu", "cuda" or "cuda:N").
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise TfbenchError(f"rank {rank}: LOCAL_RANK {local_rank} but {torch.cuda.device_count()} GPUs")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistributedContext(rank=rank, world_size=world_size, device=device)
