"""The thread counts and malloc settings of a scoring process (``engine/device.py``). How fast each
way of scoring is on 1 and 2 cores is measured by ``bench/threads.py``, not here."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading

import numpy as np
import pytest
import torch

from inspector.engine.device import limit_threads, live_threads, steady_memory, thread_count


def test_the_cores_to_use_are_asked_for_else_the_variable_else_all_but_one(monkeypatch):
    monkeypatch.delenv("INSPECTOR_THREADS", raising=False)
    assert thread_count() == max(1, (os.cpu_count() or 1) - 1)
    monkeypatch.setenv("INSPECTOR_THREADS", "3")
    assert thread_count() == 3 and thread_count(5) == 5


def test_live_mode_has_a_worker_per_core_each_on_one_torch_thread(monkeypatch):
    monkeypatch.setenv("INSPECTOR_THREADS", "3")
    try:
        assert live_threads() == 3 and torch.get_num_threads() == 1
        seen = []
        worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        worker.start()
        worker.join()
        assert seen == [1], "a thread started after it scores on one torch thread"
    finally:
        limit_threads()


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_with_steady_memory_large_blocks_freed_are_reused_without_faulting_their_pages_again():
    """Three 16 MiB blocks alive at once, as a network's widest activations, freed and made again:
    by default glibc gives the top of its heap back (then faults it in again) once it passes twice
    the largest block it has freed."""
    assert steady_memory()
    size = 16 << 20

    def call() -> None:
        blocks = [np.ones(size, np.uint8) for _ in range(3)]  # allocated and written
        del blocks

    call()  # the heap grows once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        call()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 5 * 3 * size // 4096 // 100
