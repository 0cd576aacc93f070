"""cluster-configs/: every file validates; SLURM/PBS/Kubernetes specs build without a cluster."""

from __future__ import annotations

import pathlib
import sys

import pytest
import yaml

import pipeline
from pipeline.cluster_config import (
    jobqueue_job_script,
    kubernetes_spec,
    load_cluster_config,
)
from pipeline.errors import ClusterError, ConfigError
from pipeline.io.gdal_env import worker_env

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "cluster-configs"
EXPECTED = {"local", "local-processes", "remote", "ssh", "slurm", "pbs", "kubernetes"}


def test_every_expected_config_exists_and_validates() -> None:
    files = {p.stem: p for p in CONFIGS.glob("*.yaml")}
    assert set(files) >= EXPECTED
    for path in files.values():
        overlay = load_cluster_config(path)
        assert overlay["pipeline"]["cluster"]["kind"] in {
            "local",
            "remote",
            "ssh",
            "slurm",
            "pbs",
            "kubernetes",
        }
    assert (CONFIGS / "README.md").is_file()


def test_a_typo_is_reported_with_the_file_and_the_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  cluster:\n    kind: local\n    locl: {processes: true}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'pipeline\.cluster\.locl'") as info:
        load_cluster_config(bad)
    assert str(bad) in str(info.value)
    bad.write_text("pipelin: {}\n")
    with pytest.raises(ConfigError, match="pipelin"):
        load_cluster_config(bad)
    bad.write_text("pipeline: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cluster_config(bad)


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_jobqueue_job_script_exports_the_gdal_env_before_the_worker(kind) -> None:
    overlay = load_cluster_config(CONFIGS / f"{kind}.yaml")
    env = worker_env(overlay["pipeline"].get("gdal-env"))
    script = jobqueue_job_script(kind, overlay, env)
    lines = script.splitlines()
    worker_line = next(i for i, ln in enumerate(lines) if "distributed.cli.dask_worker" in ln)
    export = next(i for i, ln in enumerate(lines) if ln.startswith("export GDAL_CACHEMAX="))
    assert export < worker_line
    assert "--nthreads 16" in lines[worker_line]
    if kind == "slurm":
        assert "#SBATCH --cpus-per-task=16" in script and "module load gdal" in script
    else:
        assert "#PBS -l select=1:ncpus=16:mem=64GB" in script


def test_kubernetes_spec_carries_image_workers_and_gdal_env() -> None:
    overlay = load_cluster_config(CONFIGS / "kubernetes.yaml")
    spec = kubernetes_spec(overlay, worker_env())
    workers = spec["spec"]["worker"]
    assert workers["replicas"] == overlay["pipeline"]["cluster"]["jobs"]
    container = workers["spec"]["containers"][0]
    assert container["image"] == overlay["kubernetes"]["image"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GDAL_CACHEMAX"] == worker_env()["GDAL_CACHEMAX"]
    assert env["AWS_REGION"] == "eu-west-1"
    yaml.safe_dump(spec)  # a plain, serialisable resource


def test_missing_optional_package_gives_the_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # makes the import fail
    overlay = load_cluster_config(CONFIGS / "slurm.yaml")
    with pytest.raises(ClusterError, match=r"raster-pipeline\[slurm\]"):
        jobqueue_job_script("slurm", overlay, {})


def test_connect_with_the_local_config_starts_a_loopback_cluster(tmp_path) -> None:
    overlay = yaml.safe_load((CONFIGS / "local.yaml").read_text())
    overlay["pipeline"]["cluster"]["local"]["dashboard-address"] = "127.0.0.1:0"
    overlay["pipeline"]["cluster"]["local"]["threads-per-worker"] = 2
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(overlay))
    with pipeline.connect(path, quiet=True) as client:
        info = client.scheduler_info()
        assert info["address"].startswith("tcp://127.0.0.1:")
        assert sum(w["nthreads"] for w in info["workers"].values()) == 2


def test_cli_cluster_config_previews_without_starting(tmp_path) -> None:
    from tests.test_cli import run_cli

    proc = run_cli("cluster-config", CONFIGS / "slurm.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "valid, kind=slurm" in proc.stdout and "#SBATCH" in proc.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: {cluster: {kind: moon}}\n")
    proc = run_cli("cluster-config", bad)
    assert proc.returncode == 1 and "pipeline.cluster.kind must be one of" in proc.stderr
