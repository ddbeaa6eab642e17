"""What the machine offers, decided once: usable cores, native bf16, what ``--precision auto`` means, and
how reading shares the cores with the model.

On a few cores, DataLoader worker processes take the cores the model needs (2 cores: 3 img/s with 4
workers against 8+ without), so chips are read in one background thread, a batch ahead, while torch
computes (it releases the GIL while it does); worker processes are used only where cores are plentiful.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from functools import cache

#: CPU flags (Linux /proc/cpuinfo names) of instructions that compute bf16 products natively.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

#: Fewer usable cores than this: no reader processes, one reader thread instead.
CORES_FOR_READER_PROCESSES = 8


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and batch schedulers set)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 products in hardware (rather than emulating them, slower than fp32)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        return bool(NATIVE_BF16_FLAGS & cpu_flags())
    return False


def resolve_precision(precision: str, device: str, backend: str = "torch") -> str:
    """``auto``: bf16 where the device runs it natively (and the backend is torch), else exact fp32."""
    if precision != "auto":
        return precision
    return "bf16" if backend == "torch" and native_bf16(device) else "fp32"


def fit_threads_to_cores() -> None:
    """Keep torch's threads within the cores this process may use (unless OMP_NUM_THREADS says how many).

    torch starts one thread per physical core of the machine, which a container or a batch job's CPU set
    may not grant: more threads than cores stall its parallel products. Below that, torch's own choice
    stands (one per physical core beats one per hyper-thread for dense products).
    """
    import torch

    if not os.environ.get("OMP_NUM_THREADS") and torch.get_num_threads() > usable_cores():
        torch.set_num_threads(usable_cores())


def reader_processes(n_items: int | None = None) -> int:
    """DataLoader worker processes for ``n_items`` inputs (None: many): none on a few cores or for a handful
    of inputs (a reader thread does it, see :func:`batches`); on many cores one per 8, at most 4."""
    cores = usable_cores()
    if (n_items is not None and n_items < 64) or cores < CORES_FOR_READER_PROCESSES:
        return 0
    return min(4, cores // CORES_FOR_READER_PROCESSES)


def batches(loader) -> Iterable:
    """The batches of a DataLoader; read ahead in a thread when it has no worker processes of its own."""
    return prefetch(loader) if getattr(loader, "num_workers", 0) == 0 else loader


def serial_torch_in_this_thread() -> None:
    """Run this thread's torch operations on one core, leaving the model's threads as they are.

    A reader's tensor operations (resize, normalise) would otherwise start a second OpenMP team as wide as
    the machine while the model's team computes: more threads than cores, and the model's parallel products
    wait at each barrier for a thread that lost its core. ``torch.set_num_threads`` sets the calling thread's
    team size and also the default of threads started later; that default is put back from a short-lived
    thread, so only this thread changes.
    """
    import torch

    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    restore = threading.Thread(target=torch.set_num_threads, args=(cores,))
    restore.start()
    restore.join()


def prefetch(iterable: Iterable, depth: int = 1) -> Iterator:
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead of the consumer (one is
    enough where reading a batch is quicker than computing it, and each batch held costs memory: a 32-chip
    batch is 64 MB; with two, classify's peak RSS grew 300 MB from 30 to 300 chips, with one 230 MB).

    torch runs on one core in that thread (:func:`serial_torch_in_this_thread`). An exception in the thread
    is raised in the consumer; closing the iterator early stops the thread, and a generator's clean-up
    (``finally``) runs in the thread, where thread-bound resources (GDAL environments) were opened.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        serial_torch_in_this_thread()
        iterator = iter(iterable)
        try:
            for item in iterator:
                if stop.is_set():
                    return
                items.put((True, item))
            items.put((False, None))
        except BaseException as exc:  # handed to the consumer, who raises it
            items.put((False, exc))
        finally:  # a generator's clean-up runs in the thread that ran it
            if hasattr(iterator, "close"):
                iterator.close()

    thread = threading.Thread(target=produce, name="msclip-reader", daemon=True)
    thread.start()
    try:
        while True:
            more, value = items.get()
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put, then let it finish
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.05)
        thread.join()
