"""Start or reach a Dask cluster: a loopback-only LocalCluster, a scheduler address, or a
cluster-config YAML file (see ``cluster-configs/``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask.config
import dask.system

from pipeline import config
from pipeline.errors import ClusterError
from pipeline.io.cloud import forwarded_credentials
from pipeline.io.gdal_env import describe, worker_env
from pipeline.malloc import trim_freed_memory

if TYPE_CHECKING:
    from distributed import Client

# distributed (and with a dashboard, bokeh: ~3 s together) is imported by the functions that
# start or reach a cluster, not here: `run_here` and `local_sizing` work without it.

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
    memory_limit: int | None = None,
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
    if not memory:
        from distributed.system import MEMORY_LIMIT

        memory = MEMORY_LIMIT
    cpus = max(1, cpu_count or dask.system.CPU_COUNT)
    usable = int(memory * (1 - _RESERVED_FRACTION))
    if processes:
        workers = n_workers or max(1, min(cpus, usable // _MIN_WORKER_MEMORY))
    else:
        workers = n_workers or 1
    threads = threads_per_worker or max(1, cpus // workers)
    return LocalSizing(workers, threads, memory_limit or max(1, usable // workers), processes)


def is_loopback(address: str) -> bool:
    """True when the address's host is this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urllib.parse.urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr)


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Spawn child processes with SIGINT ignored (inherited), restoring our own handler.

    Covers worker processes before `IgnoreCtrlC` runs in them. Only from the main thread,
    the only one that may change signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_local(
    *,
    n_workers: int | None,
    threads_per_worker: int | None,
    processes: bool,
    memory_limit: int | None,
    dashboard_address: str,
    env: dict[str, str],
    quiet: bool,
) -> Client:
    from distributed import Client

    from pipeline.worker_plugins import IgnoreCtrlC

    sizing = local_sizing(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=processes,
        memory_limit=memory_limit,
    )
    # Lock leases: a worker that dies holding the write lock stalls the others for at most
    # lease-timeout + validation-interval. Set for this process (scheduler and thread workers)
    # and inherited by nanny-spawned workers.
    dask.config.set(
        {
            "distributed.scheduler.locks.lease-timeout": config.get("cluster.lock-lease-timeout"),
            "distributed.scheduler.locks.lease-validation-interval": config.get(
                "cluster.lock-lease-validation-interval"
            ),
        }
    )
    pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **env}
    if not sizing.processes:  # thread workers live in this process
        trim_freed_memory(pre_spawn.get("MALLOC_TRIM_THRESHOLD_"))
        os.environ.update(env)
    spawning = _sigint_ignored_by_children() if sizing.processes else contextlib.nullcontext()
    try:
        with (
            dask.config.set({"distributed.nanny.pre-spawn-environ": pre_spawn, **_quiet_loop()}),
            spawning,
        ):
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
    if sizing.processes:
        client.register_plugin(IgnoreCtrlC())
    _say(quiet, sizing.describe())
    return client


def _quiet_loop() -> dict[str, Any]:
    """Lighter event-loop housekeeping for a LocalCluster we start.

    With thread workers the scheduler's and worker's event loop shares the cores with the
    kernels: distributed's statistical profiler (a stack walk every 10 ms) and its 20-100 ms
    monitor ticks measurably cost 10-15% CPU on 2 cores. Profiling is opt-in
    (``pipeline.cluster.profile: true``); the monitors tick less often.
    """
    settings: dict[str, Any] = {
        "distributed.admin.tick.interval": config.get("cluster.tick-interval"),
        "distributed.worker.memory.monitor-interval": config.get("cluster.monitor-interval"),
        "distributed.admin.system-monitor.interval": config.get("cluster.monitor-interval"),
    }
    if not config.get("cluster.profile"):
        settings["distributed.worker.profile.enabled"] = False
    return settings


@contextlib.contextmanager
def run_here(
    *, threads: int | None = None, gdal_env: dict[str, str] | None = None, quiet: bool = False
) -> Iterator[Callable[..., Any]]:
    """Run dask work in this process on dask's threaded scheduler: no cluster, no dashboard.

    For jobs too small to repay starting a LocalCluster (importing distributed and bokeh and
    starting a scheduler take seconds). This process gets what thread workers of a LocalCluster
    get: the GDAL/PROJ environment (``pipeline.gdal-env`` plus ``gdal_env``) and glibc's trim
    threshold (distributed's ``distributed.nanny.pre-spawn-environ`` value, 65536 by default).
    Within the block dask's threaded scheduler is the default one and uses ``threads``
    threads (default: ``dask.system.CPU_COUNT``, which honours CPU quotas).

    Yields
    ------
    callable
        ``dask.threaded.get``, to pass as ``scheduler=``: a callable, unlike the name
        ``"threads"``, does not make dask import distributed to look for a client (~1.3 s).
    """
    import dask.threaded

    env = worker_env(gdal_env)
    trim = env.get(
        "MALLOC_TRIM_THRESHOLD_",
        dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_", 65536),
    )
    trim_freed_memory(trim)
    os.environ.update(env)
    n = max(1, threads or dask.system.CPU_COUNT)
    _say(quiet, f"In this process: {n} thread(s), no cluster and no dashboard (small job)")
    _say(quiet, f"GDAL settings: {describe(env)}")
    with dask.config.set({"scheduler": dask.threaded.get, "num_workers": n}):
        yield dask.threaded.get


def _connect_remote(address: str, *, insecure: bool, timeout: float | None) -> Client:
    from distributed import Client

    scheme = urllib.parse.urlsplit(address).scheme
    if scheme not in ("tcp", "tls"):
        raise ClusterError(f"scheduler address {address!r} must start with tcp:// or tls://")
    if scheme == "tcp" and not is_loopback(address) and not insecure:
        raise ClusterError(
            f"refusing plain-text tcp:// to a remote scheduler {address!r}; use tls:// "
            "(credentials from dask config distributed.comm.tls.*) or pass --insecure"
        )
    extra = {} if timeout is None else {"timeout": timeout}
    try:
        return Client(address, set_as_default=True, **extra)
    except (OSError, TimeoutError) as err:
        raise ClusterError(f"cannot reach the scheduler at {address!r}: {err}") from err


def connect(
    target: str | os.PathLike[str] | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    processes: bool | None = None,
    memory_limit: int | None = None,
    dashboard_address: str | None = None,
    insecure: bool = False,
    timeout: float | None = None,
    gdal_env: dict[str, str] | None = None,
    forward_credentials: bool | None = None,
    quiet: bool = False,
) -> Client:
    """Return a distributed Client: a new LocalCluster, a running scheduler, or a configured one.

    Parameters
    ----------
    target : str or path, optional
        None for a LocalCluster; a ``tcp://`` or ``tls://`` scheduler address; or a
        cluster-config YAML file (``cluster-configs/*.yaml``: local, remote, SSH, SLURM, PBS,
        Kubernetes), validated before anything starts.
    n_workers, threads_per_worker, memory_limit : int, optional
        Override the LocalCluster sizing chosen by `local_sizing`.
    processes : bool, optional
        LocalCluster workers as processes instead of threads (default: threads).
    dashboard_address : str, optional
        Where a LocalCluster dashboard listens; default ``127.0.0.1:8787`` (distributed's own
        default listens on every interface). ``"127.0.0.1:0"`` picks a free port.
    insecure : bool, default False
        Allow a plain ``tcp://`` scheduler that is not on this machine.
    timeout : float, optional
        Seconds to wait for a remote scheduler (default: ``distributed.comm.timeouts.connect``).
    gdal_env : dict, optional
        Extra GDAL/PROJ environment for the workers, on top of ``pipeline.gdal-env``.
    forward_credentials : bool, optional
        Give the workers this process's AWS credentials and S3 settings (``AWS_*`` variables,
        a profile resolved to its keys; see `pipeline.io.cloud.forwarded_credentials`) with
        the GDAL settings. Default ``pipeline.forward-credentials`` (false): workers of a
        remote cluster then use their own. Workers of a LocalCluster inherit this process's
        environment either way. Values are never printed: only their names.
    quiet : bool, default False
        Do not print the sizing, GDAL settings and dashboard link.

    Returns
    -------
    distributed.Client
        Usable as a context manager; closing it closes any cluster `connect` started.
    """
    from pipeline.cluster_config import flatten, load_cluster_config, start_configured_cluster
    from pipeline.worker_plugins import GDALEnvPlugin

    env = worker_env(gdal_env)
    if forward_credentials is None:
        forward_credentials = bool(config.get("forward-credentials"))
    forwarded = forwarded_credentials() if forward_credentials else {}
    local_opts: dict[str, Any] = {}
    if target is not None and "://" not in str(target):  # a cluster-config file
        path = os.fspath(target)
        overlay = load_cluster_config(path)
        kind = overlay.get("pipeline", {}).get("cluster", {}).get("kind", "local")
        if kind == "remote":
            remote = overlay["pipeline"]["cluster"].get("remote", {})
            if "address" not in remote:
                raise ClusterError(f"{path}: pipeline.cluster.remote.address is required")
            with dask.config.set(flatten(overlay)):
                client = _connect_remote(
                    remote["address"],
                    insecure=bool(remote.get("insecure", insecure)),
                    timeout=timeout,
                )
        elif kind == "local":
            local_opts = overlay.get("pipeline", {}).get("cluster", {}).get("local", {}) or {}
            with dask.config.set(flatten(overlay)):
                client = _start_local(
                    n_workers=n_workers or local_opts.get("n-workers"),
                    threads_per_worker=threads_per_worker or local_opts.get("threads-per-worker"),
                    processes=bool(
                        processes if processes is not None else local_opts.get("processes", False)
                    ),
                    memory_limit=memory_limit or _bytes(local_opts.get("memory-limit")),
                    dashboard_address=dashboard_address
                    or local_opts.get("dashboard-address", "127.0.0.1:8787"),
                    env=env,
                    quiet=quiet,
                )
        else:
            client = start_configured_cluster(path, overlay, env)
    elif target is None:
        client = _start_local(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=bool(processes),
            memory_limit=memory_limit,
            dashboard_address=dashboard_address or "127.0.0.1:8787",
            env=env,
            quiet=quiet,
        )
    else:
        client = _connect_remote(str(target), insecure=insecure, timeout=timeout)
    client.register_plugin(GDALEnvPlugin({**env, **forwarded}))
    _say(quiet, f"GDAL settings on workers: {describe(env)}")
    if forward_credentials:
        names = ", ".join(sorted(forwarded)) or "none set here"
        _say(quiet, f"AWS settings forwarded to workers (values not shown): {names}")
    _say(quiet, f"Dask dashboard: {dashboard_link(client)}")
    return client


def _bytes(value: Any) -> int | None:
    if value is None:
        return None
    from dask.utils import parse_bytes

    return int(parse_bytes(value)) if isinstance(value, str) else int(value)


def dashboard_link(client: Client) -> str:
    """The client's dashboard URL, or a note when the scheduler runs none."""
    link: Any = getattr(client, "dashboard_link", None)
    return str(link) if link else "(no dashboard: bokeh is not installed on the scheduler)"
