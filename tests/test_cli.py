"""The command line as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from pipeline.io.write import TEMP_SUFFIX
from pipeline.testing import write_synthetic_raster

_CLUSTER = ["--dashboard-address", "127.0.0.1:0", "--no-progress"]


def run_cli(
    *args: str | os.PathLike[str], timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pipeline ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _files(folder: pathlib.Path) -> set[str]:
    return set(os.listdir(folder))


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("pipeline: error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_version_and_help() -> None:
    import pipeline

    proc = run_cli("--version")
    assert proc.returncode == 0 and pipeline.__version__ in proc.stdout
    proc = run_cli("compute", "--help")
    assert proc.returncode == 0 and "--kernel" in proc.stdout and "--scheduler" in proc.stdout


def test_compute_writes_the_reversed_raster(shared_data, tmp_path) -> None:
    src = shared_data / "RGB.byte.tif"
    dst = tmp_path / "out.tif"
    proc = run_cli("compute", src, dst, "--kernel", "reverse-bands", "--threads", "2", *_CLUSTER)
    assert proc.returncode == 0, proc.stderr
    assert "megapixels/s" in proc.stdout
    assert "Dask dashboard: http://127.0.0.1:" in proc.stderr
    with rasterio.open(src) as a, rasterio.open(dst) as b:
        np.testing.assert_array_equal(b.read(), a.read()[::-1])
        assert (b.crs, b.transform, b.nodata) == (a.crs, a.transform, a.nodata)
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
    proc = run_cli("compute", src, dst, "--kernel", "reverse-bands", *_CLUSTER)
    _assert_one_line_error(proc, *fragments)
    assert _files(work) == before  # nothing new, previous output untouched
    assert _files(unwritable_dir) == before_ro
    if case == "exists":
        assert dst.read_bytes() == b"previous"


def test_debug_shows_the_traceback(tmp_path) -> None:
    proc = run_cli("--debug", "compute", tmp_path / "nope.tif", tmp_path / "o.tif", "--kernel", "x")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_usage_errors_exit_2(tmp_path) -> None:
    proc = run_cli("compute", tmp_path / "a.tif")
    assert proc.returncode == 2


def test_unknown_kernel_is_a_one_line_error(shared_data, tmp_path) -> None:
    proc = run_cli("compute", shared_data / "byte.tif", tmp_path / "o.tif", "--kernel", "nope")
    _assert_one_line_error(proc, "unknown kernel 'nope'", "reverse-bands")


def test_demo_runs_end_to_end(tmp_path) -> None:
    proc = run_cli(
        "demo", "--size", "256", "--workdir", tmp_path, "--dashboard-address", "127.0.0.1:0"
    )
    assert proc.returncode == 0, proc.stderr
    assert "check: output equals input with bands reversed" in proc.stdout
    assert "megapixels/s" in proc.stdout and "output:" in proc.stdout
    assert "Dask dashboard: http://127.0.0.1:" in proc.stderr
    out = tmp_path / "sample_256x256x3_reverse-bands.tif"
    with rasterio.open(out) as ds, rasterio.open(tmp_path / "sample_256x256x3.tif") as src:
        np.testing.assert_array_equal(ds.read(), src.read()[::-1])


def test_demo_sample_is_deterministic(tmp_path) -> None:
    a = write_synthetic_raster(tmp_path / "a.tif", height=64, width=64, block=None)
    b = write_synthetic_raster(tmp_path / "b.tif", height=64, width=64, block=None)
    with rasterio.open(a) as x, rasterio.open(b) as y:
        np.testing.assert_array_equal(x.read(), y.read())


def test_temp_suffix_is_not_left_by_successful_runs(tmp_path, shared_data) -> None:
    proc = run_cli(
        "compute",
        shared_data / "byte.tif",
        tmp_path / "o.tif",
        "--kernel",
        "reverse-bands",
        *_CLUSTER,
    )
    assert proc.returncode == 0, proc.stderr
    assert not [n for n in os.listdir(tmp_path) if n.endswith(TEMP_SUFFIX)]


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
