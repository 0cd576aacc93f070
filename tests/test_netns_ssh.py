"""``cluster-configs/ssh.yaml`` for real: sshd on two hosts (network namespaces), keys made here.

``pipeline demo --cluster`` with a copy of ssh.yaml naming those hosts runs from a third, client
host; SSHCluster starts the scheduler on the first host and a worker on the second over SSH.
The dashboard is then reached the way the README says, through ``ssh -N -L``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests import netns

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

_SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
_ROOT = pathlib.Path(__file__).resolve().parents[1]
_SSH_OPTS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]


def _sshd_config(folder: pathlib.Path, address: str) -> pathlib.Path:
    path = folder / f"sshd_config-{address}"
    path.write_text(
        f"ListenAddress {address}\nPort 22\nHostKey {folder / 'host_key'}\n"
        f"PidFile {folder / f'sshd-{address}.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nAllowTcpForwarding yes\nPermitTunnel no\nX11Forwarding no\n"
    )
    return path


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """sshd on ``node0`` and ``node1``; host and user keys, known_hosts and config made here."""
    reason = netns.unavailable_reason()
    if reason:
        pytest.skip(f"network-namespace hosts unavailable: {reason}")
    if not os.path.exists(_SSHD) or shutil.which("ssh") is None:
        pytest.skip("needs OpenSSH's sshd and ssh (apt-get install openssh-server)")
    folder = tmp_path_factory.mktemp("ssh")
    for name in ("host_key", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)],
                       check=True, timeout=30)  # fmt: skip
    shutil.copy(folder / "id_ed25519.pub", folder / "authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    hosts = netns.Hosts(["node0", "node1", "client"]).start()
    procs = []
    log = open(folder / "sshd.log", "ab")  # noqa: SIM115
    try:
        host_key = (folder / "host_key.pub").read_text().split()
        known = [f"{hosts.addresses[n]} {host_key[0]} {host_key[1]}" for n in ("node0", "node1")]
        (folder / "known_hosts").write_text("\n".join(known) + "\n")
        for node in ("node0", "node1"):
            config = _sshd_config(folder, hosts.addresses[node])
            procs.append(hosts.popen(node, [_SSHD, "-D", "-e", "-f", str(config)],
                                     stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        ssh = ["ssh", *_SSH_OPTS, "-i", str(folder / "id_ed25519"),
               "-o", f"UserKnownHostsFile={folder / 'known_hosts'}"]  # fmt: skip
        deadline = time.monotonic() + 30
        for node in ("node0", "node1"):  # bounded wait for each sshd to accept a login
            while hosts.run("client", [*ssh, f"root@{hosts.addresses[node]}", "true"],
                            timeout=30, capture_output=True).returncode != 0:  # fmt: skip
                assert time.monotonic() < deadline, f"sshd on {node} did not start"
                time.sleep(0.3)
        yield {"hosts": hosts, "folder": folder, "ssh": ssh}
    finally:
        for p in procs:
            p.terminate()
        hosts.close()
        log.close()


def _cluster_file(ssh_hosts: dict[str, Any]) -> pathlib.Path:
    """A copy of cluster-configs/ssh.yaml naming the two hosts, our key and Python."""
    hosts, folder = ssh_hosts["hosts"], ssh_hosts["folder"]
    config = yaml.safe_load((_ROOT / "cluster-configs" / "ssh.yaml").read_text())
    ssh = config["pipeline"]["cluster"]["ssh"]
    ssh["hosts"] = [hosts.addresses["node0"], hosts.addresses["node1"]]
    ssh["connect-options"] = {
        "known_hosts": str(folder / "known_hosts"),
        "username": "root",
        "client_keys": [str(folder / "id_ed25519")],
    }
    # these hosts have no default route, from which distributed guesses its address otherwise
    ssh["scheduler-options"]["interface"] = "eth0"
    ssh["worker-options"] = {"nthreads": 1, "n_workers": 1, "memory_limit": "1GiB",
                             "interface": "eth0"}  # fmt: skip
    ssh["remote-python"] = sys.executable
    path = folder / "ssh.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_ssh_yaml_starts_a_real_cluster_and_the_dashboard_tunnel_works(ssh_hosts) -> None:
    hosts, folder = ssh_hosts["hosts"], ssh_hosts["folder"]
    work = folder / "demo"
    demo = hosts.popen(
        "client",
        [sys.executable, "-m", "pipeline", "demo", "--size", "256", "--workdir", str(work),
         "--cluster", str(_cluster_file(ssh_hosts)), "--keep-alive"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=_ROOT,
        start_new_session=True, env={**os.environ, "DASK_LOGGING__DISTRIBUTED": "critical"},
    )  # fmt: skip
    tunnel = None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("keeping the cluster" in line for line in lines):
            assert time.monotonic() < deadline and demo.poll() is None, "".join(lines)
            time.sleep(0.2)
        text = "".join(lines)
        assert "check: output equals input with bands reversed" in text, text
        assert "Dask dashboard: http://" in text, text
        # README: ssh -N -L 8787:127.0.0.1:8787 user@scheduler-host (local port 18787 here)
        tunnel = hosts.popen(
            "client",
            [*ssh_hosts["ssh"], "-N", "-L", "18787:127.0.0.1:8787",
             f"root@{hosts.addresses['node0']}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        get = (
            "import time, urllib.request\n"
            "for _ in range(100):\n"
            "    try:\n"
            "        r = urllib.request.urlopen('http://127.0.0.1:18787/status', timeout=5)\n"
            "        print(r.status, len(r.read())); break\n"
            "    except OSError:\n"
            "        time.sleep(0.2)\n"
        )
        proc = hosts.run("client", [sys.executable, "-c", get], timeout=60, capture_output=True,
                         text=True)  # fmt: skip
        status = proc.stdout.split()
        assert status and status[0] == "200", proc.stdout + proc.stderr
    finally:
        if tunnel is not None:
            tunnel.terminate()
            tunnel.wait(timeout=10)
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(timeout=10)
    reader.join(timeout=10)
    assert demo.returncode == 0, "".join(lines)
