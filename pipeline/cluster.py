"""Start or reach a Dask cluster: a loopback-only LocalCluster, or a scheduler address."""

from __future__ import annotations

import ipaddress
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any

import dask.system
from distributed import Client
from distributed.system import MEMORY_LIMIT

from pipeline.errors import ClusterError

#: Memory kept back for the OS and the client when sizing a LocalCluster.
_RESERVED_FRACTION = 0.1
#: Smallest per-worker budget when running one process per worker.
_MIN_WORKER_MEMORY = 2 * 2**30


@dataclass(frozen=True)
class LocalSizing:
    """Workers, threads and memory chosen for a LocalCluster."""

    n_workers: int
    threads_per_worker: int
    memory_limit: int
    processes: bool

    def describe(self) -> str:
        """One line for the terminal."""
        kind = "processes" if self.processes else "threads in this process"
        return (
            f"LocalCluster: {self.n_workers} worker(s) x {self.threads_per_worker} thread(s) "
            f"({kind}), {self.memory_limit / 2**30:.1f} GiB per worker"
        )


def local_sizing(
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    processes: bool = False,
    cpu_count: int | None = None,
    memory: int | None = None,
) -> LocalSizing:
    """Choose LocalCluster sizing from the effective CPU quota and available memory.

    ``dask.system.CPU_COUNT`` honours CPU affinity and cgroup v1/v2 quotas and
    ``distributed.system.MEMORY_LIMIT`` honours cgroup memory limits. Threads are preferred
    (one worker, one thread per core) because our kernels and GDAL release the GIL; with
    ``processes=True`` there is one single-threaded worker per core unless memory would give a
    worker less than 2 GiB.
    """
    cpus = max(1, cpu_count or dask.system.CPU_COUNT)
    usable = int((memory or MEMORY_LIMIT) * (1 - _RESERVED_FRACTION))
    if processes:
        workers = n_workers or max(1, min(cpus, usable // _MIN_WORKER_MEMORY))
        threads = threads_per_worker or max(1, cpus // workers)
    else:
        workers = n_workers or 1
        threads = threads_per_worker or max(1, cpus // workers)
    return LocalSizing(workers, threads, max(1, usable // workers), processes)


def _is_loopback(address: str) -> bool:
    host = urllib.parse.urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(
    target: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    processes: bool = False,
    dashboard_address: str = "127.0.0.1:8787",
    insecure: bool = False,
    timeout: float | None = None,
    quiet: bool = False,
) -> Client:
    """Return a distributed Client: a new LocalCluster, or one attached to a running scheduler.

    Parameters
    ----------
    target : str, optional
        None for a LocalCluster; a ``tcp://`` or ``tls://`` scheduler address otherwise.
    n_workers, threads_per_worker : int, optional
        Override the sizing chosen by `local_sizing`.
    processes : bool, default False
        Run LocalCluster workers as processes instead of threads.
    dashboard_address : str, default "127.0.0.1:8787"
        Where the dashboard listens; loopback by default (distributed's own default listens on
        every interface). Use ``"127.0.0.1:0"`` for a free port.
    insecure : bool, default False
        Allow a plain ``tcp://`` scheduler that is not on this machine.
    timeout : float, optional
        Seconds to wait for a remote scheduler (default: dask config
        ``distributed.comm.timeouts.connect``, 30 s).
    quiet : bool, default False
        Do not log the sizing and dashboard link.

    Returns
    -------
    distributed.Client
        Usable as a context manager; closing it closes a LocalCluster it started.
    """
    if target is None:
        sizing = local_sizing(
            n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes
        )
        try:
            client = Client(
                n_workers=sizing.n_workers,
                threads_per_worker=sizing.threads_per_worker,
                processes=sizing.processes,
                memory_limit=sizing.memory_limit,
                # tcp on loopback even for threads: inproc names the machine's public IP in
                # the dashboard link, and workers' own HTTP servers default to all interfaces.
                protocol="tcp://",
                host="127.0.0.1",
                dashboard_address=dashboard_address,
                worker_dashboard_address="127.0.0.1:0",
                set_as_default=True,
            )
        except Exception as err:
            raise ClusterError(f"could not start a LocalCluster: {err}") from err
        if not quiet:
            print(sizing.describe(), file=sys.stderr)
    else:
        scheme = urllib.parse.urlsplit(target).scheme
        if scheme not in ("tcp", "tls"):
            raise ClusterError(f"scheduler address {target!r} must start with tcp:// or tls://")
        if scheme == "tcp" and not _is_loopback(target) and not insecure:
            raise ClusterError(
                f"refusing plain-text tcp:// to a remote scheduler {target!r}; use tls:// "
                "(credentials from dask config distributed.comm.tls.*) or pass --insecure"
            )
        try:
            extra = {} if timeout is None else {"timeout": timeout}
            client = Client(target, set_as_default=True, **extra)
        except (OSError, TimeoutError) as err:
            raise ClusterError(f"cannot reach the scheduler at {target!r}: {err}") from err
    if not quiet:
        print(f"Dask dashboard: {dashboard_link(client)}", file=sys.stderr)
    return client


def dashboard_link(client: Client) -> str:
    """The client's dashboard URL, or a note when the scheduler runs none."""
    link: Any = getattr(client, "dashboard_link", None)
    return str(link) if link else "(no dashboard: bokeh not installed on the scheduler)"
