"""Pre-flight checks before work goes to a cluster: package versions and shared folders.

A fake client stands in for ``distributed.Client`` (the checks only call ``get_versions`` and
``run``); one test uses a real in-process cluster. The shared-folder check against a worker
that really cannot see the folder is in ``test_cluster_remote.py`` (it needs mount namespaces).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.errors import ClusterError
from pipeline.preflight import (
    _package_versions,
    check_folder_visible,
    check_versions,
    ensure_cluster_ready,
)


class FakeClient:
    """Two workers; ``run`` calls the function here unless a worker's answer is given."""

    def __init__(self, answers: dict[str, Any] | None = None, mismatch: str | None = None):
        self.answers = answers or {}
        self.mismatch = mismatch
        self.calls: list[str] = []

    def get_versions(self, check: bool = False) -> dict[str, Any]:
        self.calls.append("get_versions")
        if self.mismatch:
            raise ValueError(self.mismatch)
        return {}

    def run(self, func: Callable[..., Any], *args: Any) -> dict[str, Any]:
        self.calls.append(getattr(func, "__name__", "run"))
        workers = ("tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
        return {w: self.answers.get(w, func(*args)) for w in workers}


def test_matching_versions_pass() -> None:
    check_versions(FakeClient())


def test_distributed_version_mismatch_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError, match=r"version mismatch: .*numpy"):
        check_versions(FakeClient(mismatch="Mismatched versions found\n numpy 1 vs 2"))


def test_our_package_versions_are_compared_per_worker() -> None:
    theirs = {**_package_versions(), "rasterio": "0.0.1"}
    client = FakeClient(answers={"tcp://127.0.0.1:2": theirs})
    with pytest.raises(ClusterError, match=r"tcp://127.0.0.1:2: rasterio .* here vs 0.0.1") as err:
        check_versions(client)
    assert "127.0.0.1:1" not in str(err.value)


def test_visible_folder_passes_and_the_probe_is_removed(tmp_path) -> None:
    check_folder_visible(FakeClient(), str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_folder_a_worker_cannot_see_is_a_cluster_error(tmp_path) -> None:
    client = FakeClient(answers={"tcp://127.0.0.1:2": False})
    with pytest.raises(ClusterError, match=r"not visible from worker\(s\) tcp://127.0.0.1:2"):
        check_folder_visible(client, str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_checks_run_once_per_client_and_folder(tmp_path) -> None:
    client = FakeClient()
    (tmp_path / "b").mkdir()
    ensure_cluster_ready(client, str(tmp_path))
    ensure_cluster_ready(client, str(tmp_path))
    ensure_cluster_ready(client, str(tmp_path / "b"))
    assert client.calls == ["get_versions", "_package_versions", "exists", "exists"]


def test_preflight_imports_without_distributed() -> None:
    import subprocess
    import sys

    code = "import sys, pipeline.preflight; print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.cluster
def test_a_real_cluster_passes(tmp_path) -> None:
    import distributed

    with distributed.Client(processes=False, n_workers=1, dashboard_address=":0") as client:
        ensure_cluster_ready(client, str(tmp_path))
    assert os.listdir(tmp_path) == []
