"""Where and how computation runs: the device, CPU threads and the memory allocator.

``resolve_device("auto" | "cpu" | "cuda[:N]" | "mps")`` decides the device.
"""

from __future__ import annotations

import os
import sys

import torch

__all__ = ["resolve_device", "set_threads", "available_cpus", "reuse_freed_memory"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's device choice into a ``torch.device``.

    ``"auto"`` (or None) picks CUDA when available, then Apple's MPS, then the
    CPU. An explicit choice that is not available is an error rather than a
    silent fallback, so a job asked to run on a GPU never crawls on the CPU.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use --device auto or cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' asked for, but MPS is not available here; use --device auto or cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return dev


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(threads: int | None = None, *, processes_per_machine: int = 1) -> int:
    """Set torch's intra-op threads; returns the number set.

    ``threads`` wins when given (``--threads``, or the ``ETM_THREADS``
    environment variable); otherwise the process's CPUs are shared out
    between the data-parallel processes of this machine, so two processes on
    two cores do not each start two threads and fight over them.
    """
    if threads is None and os.environ.get("ETM_THREADS"):
        threads = int(os.environ["ETM_THREADS"])
    if threads is None:
        threads = max(1, available_cpus() // max(1, processes_per_machine))
    if threads < 1:
        raise ValueError(f"threads must be a positive number, got {threads}")
    torch.set_num_threads(threads)
    return threads


_ALLOCATOR_TUNED = False


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the system.

    A training step allocates and frees tensors of tens to hundreds of MB
    (the V x H gradient of the first layer at large V). glibc serves blocks
    above 32 MB with fresh ``mmap`` calls, so every step pays page faults to
    zero those pages again: a third of a 50k-word step here. Turning ``mmap``
    off for malloc (``M_MMAP_MAX = 0``) and raising the trim threshold makes
    the freed blocks come back from the heap. Returns whether it applied
    (Linux with glibc); set ``ETM_MALLOC=default`` to leave malloc alone.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if os.environ.get("ETM_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok
