"""Stage timers for the benchmarks: the pipeline's real functions, wrapped in this process.

`StageTimer.wrap` replaces a function (or method) where its callers look it up with a wrapper
that records the wall time and the calling thread's CPU time (`time.thread_time`) of every
call, and `StageTimer.restore` puts the originals back. Nothing of the product is copied: the
benchmarks call the pipeline's own entry points and read the timers afterwards.

Thread CPU time is what other sessions' load on a shared machine hardly inflates; it does not
count GDAL's or dask's other threads (the pipeline runs GDAL with ``GDAL_NUM_THREADS=1``, so
each GDAL call's work is in the calling thread).
"""

from __future__ import annotations

import functools
import os
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any


class StageTimer:
    """Per-label lists of wall and thread-CPU seconds of the wrapped calls."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        self._patches: list[tuple[Any, str, Any]] = []

    def record(self, label: str, wall: float, cpu: float) -> None:
        """Add one call's seconds under ``label``."""
        with self._lock:
            self.wall[label].append(wall)
            self.cpu[label].append(cpu)

    def timed(self, func: Callable[..., Any], label: str) -> Callable[..., Any]:
        """``func`` with every call recorded under ``label``."""

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.record(label, time.perf_counter() - wall, time.thread_time() - cpu)

        return wrapper

    def patch(self, owner: Any, attr: str, replacement: Any) -> None:
        """Set ``owner.attr`` to ``replacement`` until `restore`."""
        self._patches.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, replacement)

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        """Time ``owner.attr`` (a module's function or a class's method) under ``label``."""
        self.patch(owner, attr, self.timed(getattr(owner, attr), label))

    def restore(self) -> None:
        """Undo every patch, last first."""
        while self._patches:
            owner, attr, original = self._patches.pop()
            setattr(owner, attr, original)

    def clear(self) -> None:
        """Forget the recorded calls (keeps the patches)."""
        with self._lock:
            self.wall.clear()
            self.cpu.clear()

    def total_cpu(self, label: str) -> float:
        """CPU seconds of all calls under ``label``."""
        return sum(self.cpu.get(label, ()))

    def median_ms(self, label: str) -> tuple[float, float]:
        """Median (CPU, wall) milliseconds per call of ``label`` (NaN if never called)."""
        if not self.cpu.get(label):
            return float("nan"), float("nan")
        return 1000 * statistics.median(self.cpu[label]), 1000 * statistics.median(self.wall[label])


def wrap_write_staged(
    timer: StageTimer,
    owners: list[Any],
    *,
    write_label: str = "write callback",
    verify_label: str = "verify callback",
) -> None:
    """Time `pipeline.io.staged.write_staged` in each of ``owners`` and the two callbacks its
    callers hand it (``write``: create, write, encode, close; ``verify``)."""
    from pipeline.io import staged

    original = staged.write_staged

    @functools.wraps(original)
    def write_staged(dst: str, write: Callable[[str], None], **kwargs: Any) -> str:
        if kwargs.get("verify") is not None:
            kwargs["verify"] = timer.timed(kwargs["verify"], verify_label)
        return original(dst, timer.timed(write, write_label), **kwargs)

    for owner in owners:
        timer.patch(owner, "write_staged", timer.timed(write_staged, "write_staged"))


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (``/proc/stat``); None off Linux.

    Busy is everything but idle and iowait, so it includes time stolen by a hypervisor. The
    benchmarks compare it with their own CPU time to flag runs that other load disturbed.
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
