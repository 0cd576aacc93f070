"""The README's command-line and Python examples run as written (in a scratch project)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.slow


def _console_commands() -> list[str]:
    block = re.search(r"## Command line.*?```console\n(.*?)```", README, re.S)
    assert block, "README has a command-line example block"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        command, current = (current + line).strip(), ""
        if command and not command.startswith("#") and "..." not in command:
            commands.append(command.split("  #")[0].strip())
    return commands


@pytest.fixture
def project(tmp_path, shared_data) -> pathlib.Path:
    """A folder laid out like a clone: ../shared/data beside it, cluster-configs inside."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "cluster-configs").symlink_to(ROOT / "cluster-configs")
    return proj


def _env() -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)  # where the `pipeline` console script lives
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_every_command_line_example_runs_as_written(project) -> None:
    commands = _console_commands()
    assert len(commands) >= 10
    for command in commands:
        assert command.startswith("uv run pipeline"), command
        proc = subprocess.run(
            command.replace("uv run pipeline", "pipeline", 1),
            shell=True,
            cwd=project,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
            executable="/bin/bash",
        )
        expected = 1 if command.startswith("uv run pipeline batch") else 0  # bad tiles in data
        assert proc.returncode == expected, f"{command}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, command
    verify = subprocess.run(
        "pipeline verify out/*.tif --crs EPSG:3857",
        shell=True,
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        executable="/bin/bash",
    )
    assert verify.returncode == 0 and " 0 failed" in verify.stdout


def test_python_example_runs_as_written(project) -> None:
    block = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S)
    assert block, "README has a Python example block"
    proc = subprocess.run(
        [sys.executable, "-c", block.group(1)],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK   slope_4326.tif" in proc.stdout and "exit code 1" in proc.stdout
