"""The command line: in process with click's CliRunner, and once as the installed program.

Every test checks what the user gets (the message naming the file and the problem, the output
file or its absence, and its pixels against numpy), not only the exit code.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner, Result

import pipeline
from pipeline.cli import cli
from pipeline.testing import write_synthetic_raster

_CLUSTER = ["--dashboard-address", "127.0.0.1:0", "--no-progress"]
_ENV_SET_BY_CLI = "DASK_LOGGING__DISTRIBUTED"
_LOGGERS_SET_BY_CLI = ("distributed", "distributed.client", "rasterio")


def run_cli(
    *args: str | os.PathLike[str], timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pipeline ARGS`` in a new process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def invoke(*args: str | os.PathLike[str]) -> Result:
    """Run ``pipeline ARGS`` in this process (CliRunner), stdout and stderr kept apart.

    The CLI quietens loggers, sets an environment variable for worker processes and changes
    how warnings are formatted; all three are restored so later tests see the usual state.
    """
    levels = {name: logging.getLogger(name).level for name in _LOGGERS_SET_BY_CLI}
    env_before = os.environ.get(_ENV_SET_BY_CLI)
    formatwarning = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            return CliRunner().invoke(cli, [str(a) for a in args], prog_name="pipeline")
    finally:
        warnings.formatwarning = formatwarning
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if env_before is None:
            os.environ.pop(_ENV_SET_BY_CLI, None)
        else:
            os.environ[_ENV_SET_BY_CLI] = env_before


def _files(folder: pathlib.Path) -> set[str]:
    return set(os.listdir(folder))


def _error_line(stderr: str) -> str:
    """The single ``pipeline: error:`` line of ``stderr`` (fails if there are more or none)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("pipeline: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = _error_line(result.stderr)
    for fragment in fragments:
        assert fragment in line, line
    assert not result.stdout.strip(), result.stdout  # nothing claims success


def test_version_and_help() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"pipeline, version {pipeline.__version__}\n"
    result = invoke("compute", "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: pipeline compute [OPTIONS] INPUT OUTPUT")
    for option in ("--kernel", "--param", "--overwrite", "--scheduler", "--threads"):
        assert option in result.stdout, option


def test_compute_writes_the_reversed_raster_and_no_temporary_file(shared_data, tmp_path) -> None:
    src = shared_data / "RGB.byte.tif"
    dst = tmp_path / "out.tif"
    result = invoke("compute", src, dst, "--kernel", "reverse-bands", "--threads", "2", *_CLUSTER)
    assert result.exit_code == 0, result.output
    assert f"wrote {dst}\n" in result.stdout and "megapixels/s (3 bands)" in result.stdout
    assert "Dask dashboard: http://127.0.0.1:" in result.stderr
    with rasterio.open(src) as a, rasterio.open(dst) as b:
        np.testing.assert_array_equal(b.read(), a.read()[::-1])
        assert (b.crs, b.transform, b.nodata) == (a.crs, a.transform, a.nodata)
    # The temporary file (".out.tif.<hex>.pipeline-tmp") was renamed, not left behind.
    assert _files(tmp_path) == {"out.tif"}


@pytest.fixture
def unwritable_dir(tmp_path) -> pathlib.Path:
    """A folder this process cannot create files in (chmod, or /sys when running as root)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    for candidate in (folder, pathlib.Path("/sys")):
        try:
            (candidate / ".probe").open("wb").close()
        except OSError:
            return candidate
        (candidate / ".probe").unlink()
    pytest.skip("no unwritable folder available")


def _bad_case(name: str, shared_data: pathlib.Path, tmp: pathlib.Path, ro: pathlib.Path):
    """(input, output, fragments expected in the error) for each bad-input case."""
    out = tmp / "out.tif"
    if name == "missing":
        return tmp / "nope.tif", out, ["nope.tif", "no such file"]
    if name == "corrupt":
        return shared_data / "corrupt.tif", out, ["corrupt.tif", "corrupt or unreadable"]
    if name == "directory":
        return tmp, out, [str(tmp), "is a directory"]
    if name == "text":
        fake = tmp / "notes.tif"
        fake.write_text("this is not a raster\n")
        return fake, out, ["notes.tif", "not a readable raster"]
    if name == "exists":
        out.write_bytes(b"previous")
        return shared_data / "byte.tif", out, ["out.tif", "exists", "--overwrite"]
    if name == "unwritable":
        return shared_data / "byte.tif", ro / "out.tif", ["out.tif", "not writable"]
    raise AssertionError(name)


@pytest.mark.parametrize(
    "case", ["missing", "corrupt", "directory", "text", "exists", "unwritable"]
)
def test_bad_inputs_give_one_line_errors_and_leave_nothing(
    case, shared_data, tmp_path, unwritable_dir
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    src, dst, fragments = _bad_case(case, shared_data, work, unwritable_dir)
    before = _files(work)
    before_ro = _files(unwritable_dir)
    result = invoke("compute", src, dst, "--kernel", "reverse-bands", "--threads", "1", *_CLUSTER)
    _assert_one_line_error(result, *fragments)
    assert _files(work) == before  # nothing new, previous output untouched
    assert _files(unwritable_dir) == before_ro
    if case == "exists":
        assert dst.read_bytes() == b"previous"


def test_installed_program_exits_1_with_one_line_and_a_traceback_only_with_debug(
    tmp_path,
) -> None:
    # A real process: the console script's exit code, and what reaches the terminal.
    exe = shutil.which("pipeline", path=os.path.dirname(sys.executable))
    assert exe, "the pipeline entry point is installed with the package"
    args = ["compute", str(tmp_path / "nope.tif"), str(tmp_path / "o.tif"), "--kernel", "slope"]
    plain = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1, plain.stderr
    assert "Traceback" not in plain.stderr + plain.stdout
    line = _error_line(plain.stderr)
    assert str(tmp_path / "nope.tif") in line and "no such file" in line
    debug = subprocess.run([exe, "--debug", *args], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "RasterInputError" in debug.stderr.strip().splitlines()[-1]
    assert "nope.tif" in debug.stderr.strip().splitlines()[-1]
    assert _files(tmp_path) == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["IN.tif"], "Missing argument 'OUTPUT'"),
        (["IN.tif", "OUT.tif"], "Missing option '--kernel'"),
        (
            ["IN.tif", "OUT.tif", "--kernel", "slope", "--chunks", "0"],
            "Invalid value for '--chunks'",
        ),
        (["IN.tif", "OUT.tif", "--kernel", "slope", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_line(shared_data, tmp_path, args, message) -> None:
    paths = {"IN.tif": str(shared_data / "byte.tif"), "OUT.tif": str(tmp_path / "o.tif")}
    result = invoke("compute", *(paths.get(a, a) for a in args))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Usage: pipeline compute [OPTIONS] INPUT OUTPUT")
    assert f"Error: {message}" in result.stderr
    assert result.stdout == "" and _files(tmp_path) == set()


def test_unknown_kernel_is_a_one_line_error(shared_data, tmp_path) -> None:
    result = invoke("compute", shared_data / "byte.tif", tmp_path / "o.tif", "--kernel", "nope")
    _assert_one_line_error(result, "unknown kernel 'nope'", "reverse-bands", "slope")
    assert _files(tmp_path) == set()


def test_demo_runs_end_to_end(tmp_path) -> None:
    result = invoke("demo", "--size", "256", "--workdir", tmp_path, *_CLUSTER[:2])
    assert result.exit_code == 0, result.output
    assert "check: output equals input with bands reversed" in result.stdout
    assert "megapixels/s" in result.stdout
    out = tmp_path / "sample_256x256x3_reverse-bands.tif"
    assert f"output: {out}" in result.stdout
    assert "Dask dashboard: http://127.0.0.1:" in result.stderr
    with rasterio.open(out) as ds, rasterio.open(tmp_path / "sample_256x256x3.tif") as src:
        np.testing.assert_array_equal(ds.read(), src.read()[::-1])


def test_demo_sample_is_deterministic(tmp_path) -> None:
    a = write_synthetic_raster(tmp_path / "a.tif", height=64, width=64, block=None)
    b = write_synthetic_raster(tmp_path / "b.tif", height=64, width=64, block=None)
    with rasterio.open(a) as x, rasterio.open(b) as y:
        np.testing.assert_array_equal(x.read(), y.read())


def test_small_job_runs_in_process_without_distributed(shared_data, tmp_path) -> None:
    """No cluster option and a small raster: no cluster, distributed never imported, and the
    GDAL settings still applied (in this process)."""
    dst = tmp_path / "out.tif"
    code = (
        "import os, sys\n"
        "from pipeline.cli import cli\n"
        f"cli.main(['reproject', {str(shared_data / 'byte.tif')!r}, {str(dst)!r}, "
        "'--dst-crs', 'EPSG:3857', '--no-progress'], standalone_mode=False)\n"
        "print('distributed' in sys.modules, os.environ.get('GDAL_NUM_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GDAL_NUM_THREADS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False 1"
    assert "no cluster" in proc.stderr and "dashboard:" not in proc.stderr.lower()
    assert "GDAL_NUM_THREADS=1" in proc.stderr
    with rasterio.open(dst) as out:
        assert out.crs == rasterio.crs.CRS.from_epsg(3857)
