"""DistributedDataParallel setup: ``torchrun --nproc_per_node N -m vretouch_cli train ...``.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; we then use
NCCL on GPUs (one device per local rank) and gloo on CPU. Without those variables everything is
a single process and these helpers are no-ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import DeviceError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if world <= 1:
        return DistInfo(0, 1, 0, dev)
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(f"local rank {local_rank} has no GPU (this machine has {torch.cuda.device_count()})")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise DeviceError(f"distributed training supports cuda and cpu, not {dev.type}")
    if not dist.is_initialized():
        kw = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30), **kw)
    return DistInfo(rank, world, local_rank, dev)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def broadcast_flags(info: DistInfo, flags: list[int]) -> list[int]:
    """Rank 0's integer flags on every rank (so all ranks stop / checkpoint at the same step)."""
    if not info.enabled:
        return flags
    t = torch.tensor(flags, dtype=torch.int64, device=info.device)
    dist.broadcast(t, src=0)
    return [int(v) for v in t.tolist()]


def gather_objects(info: DistInfo, obj):
    """Every rank's ``obj`` as a list on every rank (a one-element list when not distributed)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
