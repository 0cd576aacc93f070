"""A TLS dask cluster across network namespaces: scheduler, workers and client on separate hosts.

`NetCluster` builds `tests.netns.Hosts` (``scheduler``, ``w1``..``wN``, ``client``), makes
temporary TLS certificates, starts ``dask scheduler`` and ``dask worker`` (with a nanny) in
their namespaces and runs the ``pipeline`` CLI in the client's. All hosts share the filesystem,
so a folder made here is the cluster's shared folder. Timeouts are shortened (`FAST_FAULTS`) so
that a cut link resolves in seconds. Used by ``tests/test_netns_*.py`` and
``benchmarks/bench_cluster.py``.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

from tests.netns import Hosts
from tests.procs import dask_command, stop_processes

#: Port of the scheduler (each namespace has its own ports: no clash between sessions).
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787

#: dask settings for every process of the cluster and the client, so that faults resolve in
#: seconds: a silent TCP connection is dropped after 11 s (the least distributed accepts: ten
#: keep-alive probes plus one second), a worker missing heartbeats for 8 s is removed, and a
#: write-lock lease not refreshed for 4 s is released.
FAST_FAULTS = {
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s",
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP": "11s",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "8s",
    "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT": "4s",
    "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL": "1s",
}

OBSERVER = str(pathlib.Path(__file__).with_name("netns_observe.py"))
_ROOT = str(pathlib.Path(__file__).resolve().parents[1])


def tls_files(folder: pathlib.Path) -> dict[str, str]:
    """A temporary CA-signed-self key pair as ``ca_file``, ``cert`` and ``key`` PEM files.

    distributed verifies the peer's certificate against the CA but not its host name
    (``check_hostname = False``), so one certificate serves every host; no SAN is needed.
    """
    from distributed.security import Security

    sec = Security.temporary()
    files = {}
    for role in ("ca_file", "cert", "key"):
        path = folder / f"{role}.pem"
        path.write_text(sec.get_tls_config_for_role("client")[role])
        path.chmod(0o600)
        files[role] = str(path)
    return files


def tls_env(files: dict[str, str]) -> dict[str, str]:
    """The ``DASK_*`` variables that give a client (the CLI) its TLS credentials."""
    return {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": files["ca_file"],
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": files["cert"],
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": files["key"],
    }


class NetCluster:
    """Scheduler, ``n_workers`` single-purpose worker hosts and a client host, over TLS.

    Parameters
    ----------
    folder : pathlib.Path
        Shared folder: certificates, logs, state files and the tests' data go here.
    n_workers, threads : int
        Worker hosts and threads per worker.
    env : dict, optional
        dask settings for every process (default `FAST_FAULTS`).
    """

    def __init__(
        self,
        folder: pathlib.Path,
        *,
        n_workers: int = 2,
        threads: int = 1,
        env: dict[str, str] | None = None,
        memory_limit: str = "1.5GiB",
    ) -> None:
        self.folder = folder
        self.workers = [f"w{i + 1}" for i in range(n_workers)]
        self.threads = threads
        self.memory_limit = memory_limit
        self.hosts = Hosts(["scheduler", *self.workers, "client"])
        self.state = folder / "state"
        self.logs = folder / "logs"
        self.settings = dict(FAST_FAULTS if env is None else env)
        self.tls: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    @property
    def address(self) -> str:
        """``tls://198.51.100.10:8786``."""
        return f"tls://{self.hosts.addresses['scheduler']}:{SCHEDULER_PORT}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.settings,
            "PIPELINE_NETNS_STATE": str(self.state),
            "PYTHONPATH": _ROOT,
        }

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment of a client process: TLS credentials and the cluster's dask settings."""
        return {**self._env(), **tls_env(self.tls), **extra}

    def _tls_args(self) -> list[str]:
        return ["--tls-ca-file", self.tls["ca_file"], "--tls-cert", self.tls["cert"],
                "--tls-key", self.tls["key"]]  # fmt: skip

    def _spawn(self, host: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{host}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        proc = self.hosts.popen(
            host, argv, env=self._env(), stdout=log, stderr=subprocess.STDOUT, cwd=_ROOT
        )
        self.procs[host] = proc
        return proc

    def start(self, *, timeout: float = 90) -> NetCluster:
        """Create the hosts, start the scheduler and workers; wait until all workers joined."""
        for d in (self.state, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.tls = tls_files(self.folder)
        self.hosts.start()
        try:
            self._spawn("scheduler", dask_command(
                "scheduler", "--protocol", "tls", "--host", self.hosts.addresses["scheduler"],
                "--port", str(SCHEDULER_PORT),
                "--dashboard-address", f"127.0.0.1:{DASHBOARD_PORT}",
                "--preload", OBSERVER, *self._tls_args(),
            ))  # fmt: skip
            for w in self.workers:
                self.start_worker(w)
            self.wait_for_workers(len(self.workers), timeout=timeout)
        except BaseException:
            self.close()
            raise
        return self

    def start_worker(self, name: str) -> None:
        """Start (or restart) worker host ``name``'s ``dask worker``."""
        self._spawn(name, dask_command(
            "worker", self.address, "--name", name, "--host", self.hosts.addresses[name],
            "--nthreads", str(self.threads), "--memory-limit", self.memory_limit,
            "--no-dashboard", "--preload", OBSERVER, *self._tls_args(),
        ))  # fmt: skip

    def scheduler_state(self) -> dict[str, Any]:
        """What the scheduler last wrote (empty before its first write)."""
        return read_json(self.state / "scheduler.json")

    def worker_state(self, name: str) -> dict[str, Any]:
        """What worker ``name`` last wrote (empty before its first write)."""
        return read_json(self.state / f"{name}.json")

    def wait_for_workers(self, n: int, *, timeout: float = 60) -> None:
        """Wait (bounded) until the scheduler lists ``n`` workers."""
        deadline = time.monotonic() + timeout
        while len(self.scheduler_state().get("workers", {})) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{n} worker(s) did not join within {timeout} s; logs in {self.logs}"
                )
            if self.procs["scheduler"].poll() is not None:
                raise RuntimeError(f"the scheduler exited; log: {self.logs / 'scheduler.log'}")
            time.sleep(0.1)

    def heal(self, *, timeout: float = 90) -> None:
        """Every link up, and every worker host running a worker the scheduler lists.

        A worker that lost the scheduler closes itself and its nanny, possibly seconds after
        its link came back: dead workers are restarted until all are up and registered twice
        in a row, a second apart.
        """
        for host in self.hosts.hosts:
            self.hosts.set_link(host, True)
        deadline = time.monotonic() + timeout
        stable = 0
        while stable < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not back within {timeout} s; logs in {self.logs}")
            for w in self.workers:
                if self.procs[w].poll() is not None:
                    self.start_worker(w)
            listed = self.scheduler_state().get("workers", {})
            up = all(w in listed and self.procs[w].poll() is None for w in self.workers)
            stable = stable + 1 if up else 0
            time.sleep(1)

    def python(
        self, argv: list[str], *, timeout: float, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGV`` in the client namespace with the client's environment."""
        return self.hosts.run(
            "client", [sys.executable, *argv], timeout=timeout, env=self.client_env(**env),
            capture_output=True, text=True, cwd=_ROOT,
        )  # fmt: skip

    def pipeline(
        self, *args: str, timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``pipeline ARGS`` in the client namespace (bounded by ``timeout``)."""
        return self.python(["-m", "pipeline", *args], timeout=timeout, **env)

    def pipeline_popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """``pipeline ARGS`` started in the client namespace; stdout and stderr piped."""
        return self.hosts.popen(
            "client", [sys.executable, "-m", "pipeline", *args], env=self.client_env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_ROOT,
        )  # fmt: skip

    def close(self) -> None:
        """Stop every process, delete the namespaces (idempotent).

        A short grace: `Hosts.close` kills whatever still runs in the namespaces anyway.
        """
        try:
            stop_processes(list(self.procs.values()), seconds=3)
        finally:
            self.hosts.close()
            for log in self._logs:
                log.close()
            self._logs.clear()

    def __enter__(self) -> NetCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_json(path: pathlib.Path) -> dict[str, Any]:
    """A JSON state file's contents; empty when it is missing or half-written."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data
