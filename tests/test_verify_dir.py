"""``pipeline verify DIR``: every raster under a folder, with a batch report's columns."""

from __future__ import annotations

import csv
import json
import pathlib
import shutil

import pytest
from click.testing import CliRunner, Result

from pipeline.batch import TileRecord
from pipeline.cli import cli
from pipeline.testing import write_synthetic_raster
from pipeline.verify import verify_raster


def _verify(runner: CliRunner, *args: object) -> Result:
    return runner.invoke(cli, ["verify", *map(str, args)], prog_name="pipeline")


@pytest.fixture
def outputs(tmp_path) -> pathlib.Path:
    """A batch-like output folder: rasters in sub-folders, plus files that are not outputs."""
    root = tmp_path / "out"
    for rel in ("a_3857.tif", "sub/b_3857.tif", "sub/deep/c_3857.tiff"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_raster(root / rel, height=64, width=64, crs="EPSG:3857", seed=len(rel))
    (root / "sub" / ".b_3857.tif.0123456789ab.pipeline-tmp").write_bytes(b"half written")
    (root / "a_3857.tif.aux.xml").write_text("<PAMDataset/>\n")
    (root / "sub" / "b_3857.tif.ovr").write_bytes(b"not ours to check")
    (root / "notes.txt").write_text("not a raster\n")
    return root


def test_a_folder_verifies_every_raster_under_it(runner, outputs, tmp_path) -> None:
    report = tmp_path / "r.jsonl"
    result = _verify(runner, outputs, "--crs", "EPSG:3857", "--report", report)
    assert result.exit_code == 0, result.output
    expected = sorted(str(p) for p in outputs.rglob("*") if p.name.endswith(("_3857.tif", ".tiff")))
    assert len(expected) == 3
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(r["input"] for r in rows) == expected
    assert all(list(r) == list(TileRecord.__dataclass_fields__) for r in rows)
    assert {(r["status"], r["error"], r["output"]) for r in rows} == {("ok", "", "")}
    assert all(r["seconds"] > 0 for r in rows)
    assert "3 file(s): 3 ok, 0 failed" in result.stdout


def test_a_bad_raster_in_a_folder_fails_the_run_with_its_problem(
    runner, outputs, tmp_path, shared_data
) -> None:
    shutil.copyfile(shared_data / "corrupt.tif", outputs / "sub" / "corrupt.tif")
    report = tmp_path / "r.csv"
    result = _verify(runner, outputs, "--report", report)
    assert result.exit_code == 1, result.output
    with open(report, encoding="utf-8", newline="") as f:
        rows = {pathlib.Path(r["input"]).name: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values()))) == list(TileRecord.__dataclass_fields__)
    assert {n: r["status"] for n, r in rows.items()} == {
        "a_3857.tif": "ok",
        "b_3857.tif": "ok",
        "c_3857.tiff": "ok",
        "corrupt.tif": "failed",
    }
    independent = verify_raster(outputs / "sub" / "corrupt.tif")
    assert not independent.ok
    assert rows["corrupt.tif"]["error"] == "; ".join(independent.problems)
    assert f"FAIL {outputs / 'sub' / 'corrupt.tif'}" in result.stdout
    assert "4 file(s): 3 ok, 1 failed" in result.stdout


def test_folders_and_files_mix_and_a_file_is_checked_once(runner, outputs, shared_data) -> None:
    result = _verify(
        runner, outputs / "sub", outputs / "sub" / "b_3857.tif", shared_data / "byte.tif"
    )
    assert result.exit_code == 0, result.output
    assert "3 file(s): 3 ok, 0 failed" in result.stdout  # b, c and byte.tif


@pytest.mark.parametrize("content", [None, "sidecars"])
def test_a_folder_without_rasters_is_a_one_line_usage_error(runner, tmp_path, content) -> None:
    folder = tmp_path / "empty"
    (folder / "sub").mkdir(parents=True)
    if content:
        (folder / "sub" / "x.tif.aux.xml").write_text("<PAMDataset/>\n")
        (folder / ".x.tif.0123456789ab.pipeline-tmp").write_bytes(b"partial")
    result = _verify(runner, folder, "--report", tmp_path / "r.csv")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"pipeline: error: {folder}: no rasters in this folder or its sub-folders"
    ]
    assert not result.stdout and not (tmp_path / "r.csv").exists()
