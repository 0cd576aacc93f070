"""Helpers for tests that run real ``dask scheduler`` / ``dask worker`` processes on loopback."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Any


def dask_command(*args: str) -> list[str]:
    """``dask ARGS`` with the ``dask`` executable of this environment."""
    exe = shutil.which("dask", path=os.path.dirname(sys.executable))
    assert exe, "the dask command is installed with distributed"
    return [exe, *args]


def stop_processes(procs: list[subprocess.Popen[bytes]], seconds: float = 20) -> None:
    """Terminate, wait a bounded time, then kill what is left."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + seconds
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def wait_for_scheduler_file(
    path: pathlib.Path, proc: subprocess.Popen[bytes], seconds: float = 60
) -> dict[str, Any]:
    """The scheduler's ``--scheduler-file`` contents once it is written (bounded wait)."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, "scheduler did not start"
        assert proc.poll() is None, "scheduler exited"
        time.sleep(0.2)
    time.sleep(0.2)  # the file is written, then closed
    info: dict[str, Any] = json.loads(path.read_text())
    return info
