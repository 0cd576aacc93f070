"""Cluster-config files: dask-config overlays that say which cluster to start or reach.

A file in ``cluster-configs/`` is an ordinary dask config overlay. ``pipeline.cluster.kind``
selects the cluster (local, remote, ssh, slurm, pbs, kubernetes); the ``pipeline`` section is
validated against our schema, and the libraries' own sections (``distributed``, ``jobqueue``,
``kubernetes``) are applied while the cluster starts.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import Any

import dask.config
import yaml
from distributed import Client

from pipeline import config
from pipeline.errors import ClusterError, ConfigError

#: Logging the remote processes of an SSHCluster need, whatever this process uses.
_SSH_LOGGING = {"logging.distributed": "info"}
_SECTIONS = {"pipeline", "distributed", "jobqueue", "kubernetes", "array", "temporary-directory"}
_EXTRAS = {
    "ssh": ("asyncssh", "ssh"),
    "slurm": ("dask_jobqueue", "slurm"),
    "pbs": ("dask_jobqueue", "pbs"),
    "kubernetes": ("dask_kubernetes", "kubernetes"),
}


def load_cluster_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a cluster-config YAML file; `ConfigError` names the file and key."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ConfigError(f"{p}: cluster config file not found")
    try:
        with open(p, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of dask config sections")
    unknown = set(data) - _SECTIONS
    if unknown:
        raise ConfigError(
            f"{p}: unknown top-level key(s) {sorted(unknown)!r} (known: {sorted(_SECTIONS)})"
        )
    config.validate(data, p)
    return data


def flatten(overlay: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted leaf keys for ``dask.config.set``, which replaces whole subtrees given a nested dict.

    >>> flatten({"jobqueue": {"slurm": {"cores": 8}}})
    {'jobqueue.slurm.cores': 8}
    """
    out: dict[str, Any] = {}
    for key, value in overlay.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def _require(kind: str) -> None:
    module, extra = _EXTRAS[kind]
    try:
        __import__(module)
    except ImportError as err:
        raise ClusterError(
            f"a {kind} cluster needs the optional package {module!r}: "
            f"pip install 'raster-pipeline[{extra}]' (or uv sync --extra {extra})"
        ) from err


class OwningClient(Client):
    """A Client that closes the cluster it was handed (SSH, jobqueue, Kubernetes)."""

    def close(self, *args: Any, **kwargs: Any) -> Any:
        """Close the client, then the cluster it owns."""
        out = super().close(*args, **kwargs)
        cluster = self.cluster
        if cluster is not None and not self.asynchronous:
            cluster.close()
        return out


def _section(overlay: Mapping[str, Any]) -> dict[str, Any]:
    return dict(overlay.get("pipeline", {}).get("cluster", {}) or {})


def _jobqueue_prologue(kind: str, env: Mapping[str, str]) -> list[str]:
    """The configured ``job-script-prologue`` plus ``export`` lines for the GDAL env."""
    prologue = list(dask.config.get(f"jobqueue.{kind}.job-script-prologue", None) or [])
    return prologue + [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]


def jobqueue_cluster(kind: str, overlay: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """A SLURMCluster or PBSCluster built from ``jobqueue.<kind>`` with the GDAL env exported.

    The environment goes into ``job_script_prologue`` so it is set before the worker process
    starts on the compute node (GDAL reads ``GDAL_CACHEMAX`` once).
    """
    _require(kind)
    import dask_jobqueue

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    with dask.config.set(flatten(overlay)):
        return cls(job_script_prologue=_jobqueue_prologue(kind, env))


def jobqueue_job_script(kind: str, overlay: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The job script a SLURM/PBS config would submit, built without starting anything."""
    _require(kind)
    from dask_jobqueue.pbs import PBSJob
    from dask_jobqueue.slurm import SLURMJob

    job_cls = {"slurm": SLURMJob, "pbs": PBSJob}[kind]
    with dask.config.set(flatten(overlay)):
        job = job_cls(
            scheduler="tcp://SCHEDULER:8786",
            name="raster-pipeline-worker",
            job_script_prologue=_jobqueue_prologue(kind, env),
        )
        script: str = job.job_script()
    return script


def kubernetes_spec(overlay: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The ``DaskCluster`` resource dask-kubernetes would create, GDAL env in every pod."""
    _require("kubernetes")
    from dask_kubernetes.operator import make_cluster_spec

    with dask.config.set(flatten(overlay)):
        k = dask.config.get("kubernetes")
        spec: dict[str, Any] = make_cluster_spec(
            name=str(k.get("name", "raster-pipeline"))
            .replace("{user}", "user")
            .replace("{uuid}", "0"),
            image=k.get("image"),
            n_workers=int(_section(overlay).get("jobs", 1)),
            resources=k.get("resources") or None,
            env={**(k.get("env") or {}), **env},
        )
    return spec


def start_configured_cluster(
    path: str, overlay: Mapping[str, Any], env: Mapping[str, str]
) -> Client:
    """Start the SSH, SLURM, PBS or Kubernetes cluster a config file describes."""
    section = _section(overlay)
    kind = section.get("kind")
    jobs = int(section.get("jobs", 1))
    if kind == "ssh":
        _require("ssh")
        from distributed.deploy.ssh import SSHCluster

        ssh = section.get("ssh", {})
        hosts = ssh.get("hosts") or []
        if len(hosts) < 2:
            raise ConfigError(
                f"{path}: pipeline.cluster.ssh.hosts needs a scheduler and a worker host"
            )
        worker_options = {**ssh.get("worker-options", {}), "env": dict(env)}
        # SSHCluster hands this process's dask config to the remote processes and learns the
        # scheduler's address from its "Scheduler at:" log line: with distributed's logging
        # quietened (the CLI does that) it would wait for that line for ever.
        with dask.config.set({**flatten(overlay), **_SSH_LOGGING}):
            cluster = SSHCluster(
                hosts,
                connect_options=ssh.get("connect-options", {}),
                worker_options=worker_options,
                scheduler_options=ssh.get("scheduler-options", {}),
                remote_python=ssh.get("remote-python"),
            )
    elif kind in ("slurm", "pbs"):
        cluster = jobqueue_cluster(kind, overlay, env)
        cluster.scale(jobs=jobs)
    elif kind == "kubernetes":
        from dask_kubernetes.operator import KubeCluster

        with dask.config.set(flatten(overlay)):
            cluster = KubeCluster(custom_cluster_spec=kubernetes_spec(overlay, env))
    else:  # pragma: no cover - the schema allows only the kinds above
        raise ConfigError(f"{path}: unsupported pipeline.cluster.kind {kind!r}")
    return OwningClient(cluster, set_as_default=True)
