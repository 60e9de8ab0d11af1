"""Training on several processes with PyTorch's own DistributedDataParallel, as launched by ``torchrun``.

``torchrun --nproc_per_node=N -m explorer train ...`` starts N copies of the CLI with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and a rendezvous address in their environment; :func:`from_environment` joins them into one
process group (NCCL on CUDA, gloo on CPU). Every rank draws the same data order from the run's seed and takes
its share of each global batch (:func:`local_share`), so each training image is seen once per epoch across
the ranks and a run with the same global batch matches a single-process run; rank 0 alone writes the run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def record(self) -> dict:
        """What a run's ``config.json`` says about how it was trained."""
        return {"world_size": self.world_size, "backend": self.backend, "launcher": "torchrun"}


def from_environment(device: str = "auto") -> DistContext | None:
    """Join the process group torchrun set up (None when not launched by torchrun or with one process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world_size <= 1:
        return None
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, backend=backend)


def device_for(context: DistContext | None, default: torch.device) -> torch.device:
    """Each rank on its own GPU (``LOCAL_RANK``); CPU ranks stay on the CPU."""
    if context is not None and context.backend == "nccl":
        return torch.device("cuda", context.local_rank)
    return default


def batch_bounds(n: int, batch: int, min_last: int) -> list[tuple[int, int]]:
    """(start, end) of each global batch of an epoch over ``n`` shuffled images.

    A last batch smaller than ``min_last`` (one image breaks BatchNorm; fewer images than ranks leaves a rank
    with nothing) joins the batch before it, so no image is dropped.
    """
    bounds = [(start, min(start + batch, n)) for start in range(0, n, batch)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_last:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def local_share(indices: torch.Tensor, context: DistContext | None) -> torch.Tensor:
    """This rank's part of a global batch: every ``world_size``-th index from its rank (all of it alone)."""
    if context is None:
        return indices
    return indices[context.rank::context.world_size]


def loss_weight(local: int, total: int, context: DistContext | None) -> float:
    """Scale of a rank's mean loss so that DDP's averaged gradient is the gradient of the global batch mean."""
    if context is None:
        return 1.0
    return local * context.world_size / total


def sum_over_ranks(values: torch.Tensor, context: DistContext | None) -> torch.Tensor:
    """Element-wise sum of ``values`` over all ranks (the tensor itself alone)."""
    if context is not None:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def wrap(model: torch.nn.Module, context: DistContext | None) -> torch.nn.Module:
    """The module the loop calls forward on: ``model`` alone, DistributedDataParallel over it otherwise."""
    if context is None:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.local_rank] if context.backend == "nccl" else None
    # Auxiliary heads (GoogLeNet, Inception) may take no gradient in a step: DDP must then look for unused
    # parameters, an extra traversal every step that other networks are spared. (Frozen weights are ignored.)
    has_aux = any(part.lower().startswith("aux") for name, _ in model.named_modules() for part in name.split("."))
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=has_aux)


def finish(context: DistContext | None) -> None:
    if context is not None and dist.is_initialized():
        dist.destroy_process_group()
