"""Batch inputs beyond one folder: several INPUTS, globs with ``**``, ``--from-list`` and URLs."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner, Result

import pipeline
from pipeline.batch import _size, plan_batch
from pipeline.cli import cli
from pipeline.errors import BatchUsageError
from pipeline.testing import write_synthetic_raster
from pipeline.verify import verify_raster

URLS = [
    "/vsicurl/https://example.com/data/scene.tif?sig=abc",
    "https://example.com/x/dem.tif",
    "s3://bucket/tiles/ortho.tiff",
]


@pytest.fixture
def tree(tmp_path) -> pathlib.Path:
    """in/a/t0.tif, in/a/t1.tif, in/b/deep/t2.tif, in/b/notes.txt, in/b/t2.tif.aux.xml."""
    for rel in ("a/t0.tif", "a/t1.tif", "b/deep/t2.tif"):
        path = tmp_path / "in" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_raster(path, height=32, width=32, block=None, seed=len(rel))
    (tmp_path / "in" / "b" / "notes.txt").write_text("not a raster\n")
    (tmp_path / "in" / "b" / "deep" / "t2.tif.aux.xml").write_text("<PAMDataset/>\n")
    return tmp_path


def _rel(paths: list[str], root: pathlib.Path) -> list[str]:
    return [pathlib.Path(p).relative_to(root).as_posix() for p in paths]


def test_several_globs_expand_here_with_recursive_double_star(tree) -> None:
    inputs = [str(tree / "in" / "a" / "*.tif"), str(tree / "in" / "b" / "**" / "*.tif")]
    plan = plan_batch(inputs, tree / "out", "EPSG:3857")
    assert _rel([j.input for j in plan.jobs], tree / "in") == [
        "a/t0.tif",
        "a/t1.tif",
        "b/deep/t2.tif",
    ]
    # sub-folders are mirrored below the folders the inputs share
    assert _rel([j.output for j in plan.jobs], tree / "out") == [
        "a/t0_3857.tif",
        "a/t1_3857.tif",
        "b/deep/t2_3857.tif",
    ]


def test_folders_globs_and_paths_mix_without_repeats(tree) -> None:
    inputs = [
        tree / "in" / "a",
        str(tree / "in" / "a" / "t0.tif"),
        str(tree / "in" / "**" / "t*.tif"),
    ]
    plan = plan_batch(inputs, tree / "out", "EPSG:4326")
    expected = sorted(str(p) for p in (tree / "in").rglob("t*.tif"))
    assert sorted(j.input for j in plan.jobs) == expected  # each input once, no collision


def test_a_list_skips_comments_resolves_paths_by_its_folder_and_keeps_urls(tree) -> None:
    lists = tree / "lists"
    lists.mkdir()
    listing = lists / "tiles.txt"
    listing.write_text(
        "# a comment\n\n"
        "../in/a/t0.tif\n"
        f"  {tree / 'in' / 'b' / 'deep' / 't2.tif'}  \n"
        "../in/missing.tif\n"
        "../in/b/notes.txt\n" + "\n".join(URLS) + "\n"
    )
    plan = plan_batch(None, tree / "out", "EPSG:3857", from_list=listing)
    assert [j.input for j in plan.jobs] == [
        str(tree / "in" / "a" / "t0.tif"),
        str(tree / "in" / "b" / "deep" / "t2.tif"),
        str(tree / "in" / "missing.tif"),  # not checked here: it fails alone when it runs
        str(tree / "in" / "b" / "notes.txt"),
        *URLS,  # kept as written, never made absolute
    ]
    assert _rel([j.output for j in plan.jobs], tree / "out") == [
        "a/t0_3857.tif",
        "b/deep/t2_3857.tif",
        "missing_3857.tif",
        "b/notes_3857.tif",
        "scene_3857.tif",  # a URL's last path component, without the query
        "dem_3857.tif",
        "ortho_3857.tif",
    ]


def test_inputs_and_a_list_add_up(tree) -> None:
    listing = tree / "list.txt"
    listing.write_text("in/b/deep/t2.tif\n")
    plan = plan_batch(
        str(tree / "in" / "a" / "*.tif"), tree / "out", "EPSG:3857", from_list=listing
    )
    assert _rel([j.input for j in plan.jobs], tree / "in") == [
        "a/t0.tif",
        "a/t1.tif",
        "b/deep/t2.tif",
    ]


def test_urls_with_one_name_collide_before_any_work(tree) -> None:
    listing = tree / "urls.txt"
    listing.write_text("https://a.example/x/dem.tif\n/vsis3/bucket/y/dem.tif\n")
    with pytest.raises(BatchUsageError, match="would both be written"):
        plan_batch(None, tree / "out", "EPSG:3857", from_list=listing)
    assert not (tree / "out").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: {"from_list": t / "nope.txt"}, "nope.txt: no such list file"),
        (lambda t: {"from_list": _write(t / "c.txt", "# only\n\n  \n")}, "names no inputs"),
        (lambda t: {"inputs": [str(t / "in" / "*.jp2")]}, "glob '{t}/in/*.jp2' matches no files"),
        (lambda t: {"inputs": [t / "in" / "b"]}, "no input rasters found in folder"),
        (lambda t: {"inputs": None}, "no inputs"),
    ],
)
def test_usage_errors_name_the_problem(tree, make, message) -> None:
    kwargs = make(tree)
    inputs = kwargs.pop("inputs", None)
    with pytest.raises(BatchUsageError, match=message.format(t=tree).replace("*", r"\*")) as err:
        plan_batch(inputs, tree / "out", "EPSG:3857", **kwargs)
    assert "\n" not in str(err.value)


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    return path


def test_size_counts_urls_and_missing_files_as_small(tree) -> None:
    tile = tree / "in" / "a" / "t0.tif"
    assert _size(str(tile)) == tile.stat().st_size
    assert [_size(u) for u in URLS] == [0, 0, 0]
    assert _size(str(tree / "in" / "missing.tif")) == 0


def _batch(runner: CliRunner, *args: object, stdin: str | None = None) -> Result:
    argv = ["batch", *map(str, args), "--dst-crs", "EPSG:3857"]
    return runner.invoke(cli, argv, input=stdin, prog_name="pipeline")


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (["{t}/in/a/*.tif", "{t}/in/*.jp2", "-o", "{t}/out"], None, "glob '{t}/in/*.jp2' matches"),
        (["--from-list", "{t}/none.txt", "-o", "{t}/out"], None, "{t}/none.txt: no such list file"),
        (["--from-list", "-", "-o", "{t}/out"], "# nothing\n", "standard input: the list names"),
        (["{t}/in/b", "-o", "{t}/out"], None, "no input rasters found in folder '{t}/in/b'"),
    ],
)
def test_cli_usage_errors_are_one_line_with_exit_2(runner, tree, args, stdin, fragment) -> None:
    result = _batch(runner, *(a.format(t=tree) for a in args), stdin=stdin)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("pipeline: error: ")
    assert fragment.format(t=tree) in line
    assert "Traceback" not in result.output and not (tree / "out").exists()


def test_cli_without_inputs_is_a_usage_error(runner, tmp_path) -> None:
    result = _batch(runner, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "give INPUTS" in result.stderr


@pytest.mark.cluster
def test_cli_globs_and_stdin_list_bad_lines_fail_alone(runner, tree, shared_data) -> None:
    shutil.copyfile(shared_data / "RGB.byte.tif", tree / "rgb.tif")  # scratch copy
    stdin = "\n".join(
        [
            "# from standard input: relative to the working folder",
            str(tree / "rgb.tif"),
            str(tree / "in" / "missing.tif"),
            str(tree / "in" / "b" / "notes.txt"),
            "/vsicurl/http://127.0.0.1:9/remote.tif",
        ]
    )
    report = tree / "report.jsonl"
    result = _batch(
        runner,
        str(tree / "in" / "a" / "*.tif"),
        str(tree / "in" / "b" / "**" / "*.tif"),
        "--from-list",
        "-",
        "-o",
        tree / "out",
        "--report",
        report,
        "--workers",
        "1",
        "--threads",
        "2",
        "--dashboard-address",
        "127.0.0.1:0",
        "--no-progress",
        stdin=stdin,
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "7 input tiles" in result.stderr
    rows = {
        pathlib.Path(r["input"]).name: r for r in map(json.loads, report.read_text().splitlines())
    }
    assert {n: r["status"] for n, r in rows.items()} == {
        "t0.tif": "done",
        "t1.tif": "done",
        "t2.tif": "done",
        "rgb.tif": "done",
        "missing.tif": "failed",
        "notes.txt": "failed",
        "remote.tif": "failed",
    }
    for name in ("missing.tif", "notes.txt", "remote.tif"):
        error = rows[name]["error"]
        assert "\n" not in error and error, rows[name]
        assert f"FAILED {rows[name]['input']}: " in result.stdout
    assert "not a readable raster" in rows["notes.txt"]["error"]
    assert rows["remote.tif"]["input"] == "/vsicurl/http://127.0.0.1:9/remote.tif"
    assert rows["remote.tif"]["output"] == str(tree / "out" / "remote_3857.tif")
    # the good tiles are written, verified and equal to reprojecting them on their own
    with rasterio.open(tree / "out" / "rgb_3857.tif") as ds:
        expected = pipeline.reproject(pipeline.open_raster(tree / "rgb.tif"), "EPSG:3857")
        np.testing.assert_array_equal(ds.read(), expected.values)
    for rel in ("in/a/t0_3857.tif", "in/a/t1_3857.tif", "in/b/deep/t2_3857.tif"):
        assert verify_raster(tree / "out" / rel, crs="EPSG:3857").ok, rel
