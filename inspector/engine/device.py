"""Device choice (CUDA, then Apple MPS, then CPU; overridable by name), thread counts (torch's,
live mode's workers) and the malloc settings of a scoring process."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device that is not available is an error."""
    import torch  # here, not at the top: a runtime-only install (no torch) imports this module for limit_threads

    preference = (preference or "auto").lower()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA GPU is available (use --device cpu or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("MPS was requested but is not available on this machine")
    return device


def device_label(device: torch.device) -> str:
    """Human-readable name, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def thread_count(threads: int | None = None) -> int:
    """The cores to use: ``threads``, else INSPECTOR_THREADS, else all but one (left to the window,
    the camera and the OS)."""
    return threads or int(os.environ.get("INSPECTOR_THREADS", "0")) or max(1, (os.cpu_count() or 1) - 1)


def limit_threads(threads: int | None = None) -> int:
    """Keep torch and OpenCV from oversubscribing small machines (INSPECTOR_THREADS overrides).

    One core is left to the window, the camera and the OS: torch's OpenMP threads spin-wait,
    and on a 2-core machine two of them next to any other busy thread run ~100× slower.
    """
    import cv2

    threads = thread_count(threads)
    try:
        import torch
    except ImportError:  # a runtime-only install: ONNX Runtime and OpenVINO take their thread count from the session
        pass
    else:
        torch.set_num_threads(threads)
    cv2.setNumThreads(1)
    return threads


def live_threads(threads: int | None = None) -> int:
    """Live mode: one inference worker per core to use (``thread_count``), each scoring on one torch
    thread; returns the number of workers. Call it before the workers start.

    Why frames in parallel rather than torch's threads: libgomp (torch's OpenMP) keeps a thread pool
    for every thread that ran a parallel region (the main thread's lives on once a model was made or
    loaded there), and once it manages more threads than there are CPUs it cuts its spin-wait to
    ~1000 iterations, so every op's barrier sleeps on a futex: a 64 px frame scored on two torch
    threads from a worker thread took 3× as long as from the main thread (``bench/threads.py``
    catches that). A thread on one torch thread runs no parallel region at all. Each thread takes
    torch's count at its first op, so this holds for the workers started after it."""
    workers = thread_count(threads)
    limit_threads(1)
    return workers


# glibc's mallopt parameters (malloc.h) and the values a scoring process runs with
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc takes on a 64-bit machine (half its 64 MiB heap)
TRIM_THRESHOLD = 256 << 20


def steady_memory() -> bool:
    """Keep the memory a model frees for its next call: glibc's mmap threshold at 32 MiB and its trim
    threshold at 256 MiB (``mallopt``); True when set. Call it once, where a scoring process starts.

    Why: by default glibc maps each block above a threshold it raises only as such blocks are freed,
    and gives the top of its heap back to the OS once it passes twice the largest block freed so far:
    a network's widest buffers, alive together, were given back and faulted in again on every call.
    Linux with glibc only: elsewhere (macOS, Windows, musl) nothing is done and it returns False."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def cpu_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX): where it does not,
    torch emulates it and a bfloat16 autocast is slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))
