"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` and ``DistributedDataParallel``.

``torchrun --nproc_per_node N -m etm train ...`` starts N processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in their
environment; :func:`init_from_environment` joins them into a process group
(gloo on CPU, nccl on CUDA). ``etm train --nproc N`` is a shortcut that runs
torchrun's launcher for one machine. Training then wraps the model in
``DistributedDataParallel``, which averages gradients across processes after
every backward pass.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist

logger = logging.getLogger("etm.distributed")  # the name logs print and users filter on (kept from before the move)

__all__ = ["rank_and_world", "init_from_environment", "launch", "is_main_process", "broadcast_float", "all_sum",
           "average_running_statistics"]


def rank_and_world() -> tuple[int, int]:
    """(rank, number of processes); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


def launched_by_torchrun() -> bool:
    """True inside a process started by torchrun (it sets these variables)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def init_from_environment(device: str = "auto", threads: int | None = None) -> torch.device:
    """Join the process group torchrun set up; returns this process's device.

    On CUDA machines each process takes the GPU of its ``LOCAL_RANK`` and the
    backend is nccl; otherwise gloo on the CPU, with the machine's cores
    shared out between the processes of this machine.
    """
    from etm.device import resolve_device

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    elif dev.type == "mps":
        dev = torch.device("cpu")  # no collective backend for MPS
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    if dev.type == "cpu":
        from etm.device import set_threads

        set_threads(threads, processes_per_machine=int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())))
    logger.info("process %d of %d on %s (%s)", dist.get_rank(), dist.get_world_size(), dev, backend)
    return dev


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``python -m etm <argv>`` in ``nproc`` processes on this machine through torchrun's launcher."""
    from torch.distributed.run import main as torchrun_main

    args = ["--standalone", f"--nproc_per_node={nproc}", "-m", "etm", *argv]
    logger.info("launching: torchrun %s", " ".join(args))
    # torchrun sets OMP_NUM_THREADS=1 with a warning when it is unset; each process sets its own share of the
    # cores (init_from_environment), so it starts from that share instead, and the warning goes
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp is None:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(nproc, 1)))
    try:
        torchrun_main(args)
    except SystemExit as exit_:  # torchrun exits on failure with the failing worker's code
        return int(exit_.code or 0)
    except Exception as err:  # torch.distributed.elastic's ChildFailedError: report, do not dump a traceback
        print(f"etm train: a training process failed: {err}", file=sys.stderr)
        return 1
    finally:
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    return 0


def broadcast_float(value: float, src: int = 0) -> float:
    """``value`` as rank ``src`` has it, on every rank (a no-op for one process)."""
    if rank_and_world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.broadcast(t, src)
    return float(t.item())


def all_sum(values: Sequence[float]) -> list[float]:
    """Elementwise sum of ``values`` over all ranks (a no-op for one process)."""
    if rank_and_world()[1] == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.tolist()


def average_running_statistics(module: torch.nn.Module) -> None:
    """Average every batch norm's running mean and variance over all ranks (a no-op for one process).

    Why: each rank normalises its own batches, so its running statistics
    drift from the others'. The product decoder's topics (``get_beta()``, which
    the seed prior reads) use them, and only rank 0 writes checkpoints: with
    the ranks averaged at each epoch's end, the saved model's statistics
    come from every rank's documents and a resumed run continues exactly.
    """
    world = rank_and_world()[1]
    if world == 1:
        return
    device = _collective_device()
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for buf in (m.running_mean, m.running_var):
                t = buf.detach().to(device, torch.float64)
                dist.all_reduce(t)
                buf.copy_(t / world)


def _collective_device() -> torch.device:
    """nccl only moves CUDA tensors; gloo moves CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
