"""Several processes: the launcher's environment (rank, world size), device and precision, the
``torch.distributed.run`` command line, the per-rank sampler and the ranks' parameter check.

Imports :mod:`deblurcli.train.config` of the package.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from deblurcli.train.config import TrainConfig, TrainError


def _dist_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torch's launcher environment (0, 0, 1 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def resolve_device(cfg: TrainConfig, local_rank: int, world: int):  # -> torch.device
    import torch

    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available (use --device cpu)")
        if world > 1 or name == "cuda":
            name = f"cuda:{local_rank}" if world > 1 else "cuda:0"
        dev = torch.device(name)
        torch.cuda.set_device(dev)
        return dev
    if name != "cpu":
        raise TrainError(f"unknown --device {cfg.device!r}; choose auto, cpu or cuda")
    return torch.device("cpu")


def resolve_precision(cfg: TrainConfig, device) -> str:
    """``cfg.precision`` with "auto" resolved: bf16 on CUDA GPUs that support it and on CPUs with
    native bf16 (AMX or AVX512-BF16; 2-4x faster there), fp32 elsewhere."""
    import torch

    from deblurcli.hardware import cpu_has_bf16

    if cfg.precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_bf16() else "fp32"
    return cfg.precision


def check_gpus(n: int) -> None:
    """Fail before launching when fewer than ``n`` CUDA devices are visible."""
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < n:
        raise TrainError(f"--gpus {n}: this machine has {have} CUDA device{'s' if have != 1 else ''}")


def launcher_command(
    worker_args: list[str],
    *,
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: Optional[str] = None,
    python: Optional[str] = None,
) -> list[str]:
    """The ``python -m torch.distributed.run ...`` command line that starts the training processes.

    One node: ``--standalone`` (a free local port). Several nodes: the static rendezvous at
    ``rdzv_endpoint`` (host:port of node 0) with this node's ``--node-rank``; run the same command on
    every node.
    """
    import sys

    cmd = [python or sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes > 1:
        if not rdzv_endpoint:
            raise TrainError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the address of node 0)")
        cmd += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        cmd += ["--standalone"]
    return cmd + worker_args


class _Sampler:
    """DistributedSampler whose epoch can start part-way (exact resume without loading skipped data)."""

    def __init__(self, n: int, *, world: int, rank: int, seed: int) -> None:
        from torch.utils.data import DistributedSampler

        self.inner = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return iter(list(self.inner)[self.start :])

    def __len__(self) -> int:
        return len(self.inner) - self.start


def param_max_diff(nets: list[Any], distributed: bool) -> float:
    """Largest difference between this rank's parameters and rank 0's (all ranks call it)."""
    import torch
    import torch.distributed as dist

    if not distributed:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).float() for n in nets for p in n.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)
