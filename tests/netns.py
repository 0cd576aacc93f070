"""Hosts for multi-machine tests: one Linux network namespace per host on a private bridge.

Each host gets a namespace with ``lo`` up and an ``eth0`` on 198.51.100.0/24 (TEST-NET-2, never
routed). The ``eth0`` ends are veth pairs whose other ends sit on a bridge in a namespace of its
own, so the root namespace takes no part: no bridge, route or address is added there. Every
name starts with a per-run prefix, so parallel sessions do not clash, and `Hosts.close` (also
run at exit) kills whatever still runs in the namespaces and deletes them.

Usable without pytest (the cluster benchmark uses it). Needs root and iproute2's ``ip``;
`unavailable_reason` says why not when they are missing.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

#: TEST-NET-2 (RFC 5737): documentation addresses, never routed anywhere.
SUBNET = "198.51.100"
#: Every namespace name this harness creates starts with this.
NAME_PREFIX = "rpnet-"
#: Bounded wait for any one ``ip`` command.
_IP_TIMEOUT = 15


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed"
    if shutil.which("unshare") is None:
        return "util-linux's unshare command is not installed"
    probe = subprocess.run(
        ["unshare", "--net", "true"], capture_output=True, text=True, timeout=_IP_TIMEOUT
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    used = subprocess.run(
        ["ip", "-o", "addr"], capture_output=True, text=True, timeout=_IP_TIMEOUT
    ).stdout
    if f" {SUBNET}." in used:
        return f"{SUBNET}.0/24 is already used by this machine"
    return None


def namespaces(prefix: str = NAME_PREFIX) -> list[str]:
    """Network namespaces whose name starts with ``prefix``."""
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=_IP_TIMEOUT
    ).stdout
    names = (line.split()[0] for line in out.splitlines() if line.strip())
    return [n for n in names if n.startswith(prefix)]


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


class Hosts:
    """Namespaces named for ``hosts``, joined by a bridge in a namespace of their own.

    Parameters
    ----------
    hosts : sequence of str
        Short host names (``"scheduler"``, ``"w1"``, ...); host ``i`` gets
        ``198.51.100.(10 + i)``.
    prefix : str, optional
        Namespace name prefix (default: ``rpnet-<pid>-<random>-``).
    """

    def __init__(self, hosts: Sequence[str], *, prefix: str | None = None) -> None:
        if len(set(hosts)) != len(hosts) or len(hosts) > 200:
            raise ValueError(f"expected up to 200 distinct host names, got {hosts!r}")
        self.prefix = prefix or f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(3)}-"
        self.hosts = list(hosts)
        self.addresses = {h: f"{SUBNET}.{10 + i}" for i, h in enumerate(self.hosts)}
        self.bridge_ns = f"{self.prefix}bridge"
        self._created: list[str] = []
        self._closed = False

    def ns(self, host: str) -> str:
        """The namespace name of ``host``."""
        return f"{self.prefix}{host}"

    def start(self) -> Hosts:
        """Create the namespaces, the bridge and the links; undone if any step fails."""
        atexit.register(self.close)
        try:
            self._add_ns(self.bridge_ns)
            _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge_ns, "link", "set", "br0", "up")
            for i, host in enumerate(self.hosts):
                ns = self.ns(host)
                self._add_ns(ns)
                port = f"p{i}"
                _ip("-n", self.bridge_ns, "link", "add", port, "type", "veth",
                    "peer", "name", "eth0", "netns", ns)  # fmt: skip
                _ip("-n", self.bridge_ns, "link", "set", port, "master", "br0", "up")
                _ip("-n", ns, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``host``'s namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``host``'s namespace."""
        return subprocess.Popen(self.argv(host, argv), **kwargs)

    def run(
        self, host: str, argv: Sequence[str], *, timeout: float, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` in ``host``'s namespace to completion (bounded by ``timeout``)."""
        return subprocess.run(self.argv(host, argv), timeout=timeout, **kwargs)

    def set_link(self, host: str, up: bool) -> None:
        """Cut (``up=False``) or restore ``host``'s only link, from inside its namespace."""
        _ip("-n", self.ns(host), "link", "set", "eth0", "up" if up else "down")

    def pids(self) -> list[int]:
        """Processes running in any of these namespaces."""
        out: list[int] = []
        for ns in self._created:
            proc = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=_IP_TIMEOUT
            )
            out += [int(p) for p in proc.stdout.split()]
        return out

    def close(self) -> None:
        """Kill what runs in the namespaces and delete them (idempotent; also run at exit)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for _ in range(3):  # processes started while we were killing: look again
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        errors = []
        for ns in reversed(self._created):  # hosts first, the bridge (and its ports) last
            proc = subprocess.run(
                ["ip", "netns", "del", ns], capture_output=True, text=True, timeout=_IP_TIMEOUT
            )
            if proc.returncode != 0:
                errors.append(f"{ns}: {proc.stderr.strip()}")
        self._created.clear()
        if errors:
            raise RuntimeError("could not delete namespace(s): " + "; ".join(errors))

    def __enter__(self) -> Hosts:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
