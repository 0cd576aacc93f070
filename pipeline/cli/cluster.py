"""``pipeline cluster-config FILE``: validate a cluster-config file and show what it starts."""

from __future__ import annotations

import click


@click.command("cluster-config")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
def cluster_config(path: str) -> None:
    """Validate FILE and print what it would start, without starting anything.

    SLURM/PBS: the job script; Kubernetes: the DaskCluster resource; local: the sizing.
    """
    import yaml

    from pipeline.cluster import local_sizing
    from pipeline.cluster_config import jobqueue_job_script, kubernetes_spec, load_cluster_config
    from pipeline.io.gdal_env import describe, worker_env

    overlay = load_cluster_config(path)
    section = overlay.get("pipeline", {}).get("cluster", {}) or {}
    kind = section.get("kind", "local")
    env = worker_env((overlay.get("pipeline", {}) or {}).get("gdal-env"))
    click.echo(f"{path}: valid, kind={kind}")
    click.echo(f"GDAL settings on workers: {describe(env)}")
    if kind == "local":
        local = section.get("local", {}) or {}
        sizing = local_sizing(
            n_workers=local.get("n-workers"),
            threads_per_worker=local.get("threads-per-worker"),
            processes=bool(local.get("processes", False)),
        )
        click.echo(sizing.describe())
    elif kind == "remote":
        click.echo(f"scheduler: {section.get('remote', {}).get('address')}")
    elif kind in ("slurm", "pbs"):
        click.echo(jobqueue_job_script(kind, overlay, env))
    elif kind == "kubernetes":
        click.echo(yaml.safe_dump(kubernetes_spec(overlay, env), sort_keys=False))
    elif kind == "ssh":
        hosts = section.get("ssh", {}).get("hosts", [])
        click.echo(f"scheduler on {hosts[:1]}, workers on {hosts[1:]}")
