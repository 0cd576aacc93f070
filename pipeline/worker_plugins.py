"""Worker plugins `pipeline.connect` registers: GDAL/PROJ environment, Ctrl-C in workers.

Kept apart from `pipeline.cluster` because subclassing ``WorkerPlugin`` imports distributed
(~1.3 s): only a command that really starts or reaches a cluster pays for it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class GDALEnvPlugin(WorkerPlugin):
    """Sets the GDAL/PROJ environment on every worker, including workers that join or restart.

    Settings read once by GDAL (``GDAL_CACHEMAX``) must also be in the environment before the
    worker process starts; `pipeline.connect` does that with the nanny's pre-spawn environment
    (local and jobqueue workers) and this plugin covers everything else.
    """

    name = "pipeline-gdal-env"

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._before: dict[str, str | None] = {}

    def __repr__(self) -> str:  # never the values: they may hold forwarded credentials
        return f"GDALEnvPlugin({sorted(self.env)})"

    def setup(self, worker: Any) -> None:
        """Export the settings in the worker process."""
        self._before = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)

    def teardown(self, worker: Any) -> None:
        """Restore what the settings replaced: a client that registers this plugin again
        without ``--forward-credentials`` leaves no forwarded credentials behind."""
        for name, value in self._before.items():
            if os.environ.get(name) != self.env.get(name):
                continue  # changed since: not ours to restore
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class IgnoreCtrlC(WorkerPlugin):
    """Worker processes of a LocalCluster we start ignore Ctrl-C (SIGINT).

    A terminal's Ctrl-C reaches the whole process group. The client handles it and closes
    the cluster, which stops its worker processes; left to Python's default handler, each
    worker process would also print a ``KeyboardInterrupt`` traceback. Applies in worker
    processes only (never in the client's own process) and again in restarted ones.
    """

    name = "pipeline-ignore-sigint"

    def setup(self, worker: Any) -> None:
        if multiprocessing.parent_process() is None:
            return  # thread workers: this is the user's process
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
