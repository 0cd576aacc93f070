"""Dask preload for the namespace cluster: each process writes what it is doing to a JSON file.

Loaded with ``--preload tests/netns_observe.py`` by the scheduler and workers that
`tests.netns_cluster` starts. Every ``PIPELINE_NETNS_POLL`` seconds (default 0.01) the scheduler
writes ``$PIPELINE_NETNS_STATE/scheduler.json`` (workers by name with their processing count,
held lock leases, connected clients) and each worker ``<name>.json`` (tasks executing, whether
one of its threads is inside the locked chunk write). The test process, in the root namespace,
cannot reach the cluster over the network; it reads these files on the shared filesystem.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import Any


def _dump(path: str, state: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def _writing() -> bool:
    """Is one of this process's threads inside rioxarray's chunk write (the write lock held)?

    dask's ``store`` takes the lock around ``target[region] = chunk``, so a frame of
    ``RasterioWriter.__setitem__`` means the lock is held.
    """
    for frame in sys._current_frames().values():
        f: Any = frame
        while f is not None:
            code = f.f_code
            if code.co_name == "__setitem__" and code.co_filename.endswith("raster_writer.py"):
                return True
            f = f.f_back
    return False


def _scheduler_state(scheduler: Any) -> dict[str, Any]:
    workers = {
        str(ws.name): {"address": ws.address, "processing": len(ws.processing)}
        for ws in list(scheduler.workers.values())
    }
    leases = scheduler.extensions["semaphores"].leases
    return {
        "time": time.time(),
        "workers": workers,
        "leases": sum(len(v) for v in list(leases.values())),
        "clients": len([c for c in scheduler.clients if not str(c).startswith("fire-and-forget")]),
    }


def _worker_state(worker: Any) -> dict[str, Any]:
    return {
        "time": time.time(),
        "pid": os.getpid(),
        "executing": len(worker.state.executing),
        "writing": _writing(),
    }


def dask_setup(server: Any) -> None:
    """Start a daemon thread that keeps this process's state file up to date."""
    from distributed import Scheduler

    folder = os.environ["PIPELINE_NETNS_STATE"]
    every = float(os.environ.get("PIPELINE_NETNS_POLL", "0.01"))
    if isinstance(server, Scheduler):
        path, describe = os.path.join(folder, "scheduler.json"), _scheduler_state
    else:
        path, describe = os.path.join(folder, f"{server.name}.json"), _worker_state

    def loop() -> None:
        while True:
            # RuntimeError etc.: the state changed while we read it; next time
            with contextlib.suppress(RuntimeError, KeyError, AttributeError):
                _dump(path, describe(server))
            time.sleep(every)

    threading.Thread(target=loop, name="netns-observe", daemon=True).start()
