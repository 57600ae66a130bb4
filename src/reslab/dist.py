"""Several processes, one run: torchrun's environment, the process group, and the few collectives reslab needs.

The only code in reslab that reads the launcher's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``TORCHELASTIC_RESTART_COUNT``). :func:`setup` joins the process group that
``torchrun`` (or ``reslab train --nproc N``) started, with NCCL on CUDA and gloo otherwise, a
finite timeout, and one device per local rank. Without a launcher it returns :data:`SINGLE`, a
one-process group whose collectives do nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as torch_dist

from reslab.errors import ConfigError

TIMEOUT_MINUTES = 5  # collectives and rendezvous give up after this long (torch's default is 30 minutes)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""  # "gloo" or "nccl"; "" for one process
    restart: int = 0  # how many times torchrun has restarted the workers

    @property
    def is_primary(self) -> bool:
        """The rank that writes: files, progress, TensorBoard, checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch_dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place (identity in one process)."""
        if self.distributed:
            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        return tensor

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm's running statistics, which each rank updates from
        its own images), so that every rank evaluates, and would save, the same network."""
        if self.distributed:
            for buffer in module.buffers():
                torch_dist.broadcast(buffer, src=0)

    def all_agree(self, ok: bool, device: torch.device | str = "cpu") -> bool:
        """True only if every rank says True (so one rank's failure stops every rank, not a hang)."""
        if not self.distributed:
            return ok
        flag = torch.tensor([0.0 if ok else 1.0], device=device)
        return self.all_reduce_sum(flag).item() == 0.0

    def close(self) -> None:
        if self.distributed and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


SINGLE = Dist()


def launched() -> bool:
    """Whether this process was started by torchrun (or ``--nproc``) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def restart_count() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def launched_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def setup(device: str = "auto", *, timeout_minutes: float = TIMEOUT_MINUTES) -> tuple[Dist, torch.device]:
    """Join the launcher's process group (if any) and pick this rank's device.

    ``device``: ``auto`` (CUDA device ``LOCAL_RANK`` where CUDA is available, else the CPU), ``cpu``,
    or ``cuda``. Returns the group and the device.
    """
    if not launched():
        from reslab.device import resolve_device
        return SINGLE, resolve_device(device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device is {device!r} but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        dev, backend = torch.device("cuda", local_rank), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not torch_dist.is_initialized():
        timeout = timedelta(minutes=timeout_minutes)
        extra = {"device_id": dev} if use_cuda else {}
        if restart_count() and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # After a restart, torchrun's standalone/c10d rendezvous hands the workers the same store as
            # before, where the dead round's addresses still sit under the same keys: gloo then connects to
            # a port nobody listens on (measured: about one restart in two failed). A prefix per attempt
            # keeps the rounds apart.
            store = torch_dist.PrefixStore(f"reslab/attempt{restart_count()}", torch_dist.TCPStore(
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False, timeout=timeout))
            torch_dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout, **extra)
        else:
            torch_dist.init_process_group(backend, timeout=timeout, **extra)
    return Dist(rank=rank, world_size=world, local_rank=local_rank, backend=backend,
                restart=restart_count()), dev


def shutdown() -> None:
    """Leave the process group, if this process joined one (the command line calls this on exit)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
