"""Batch planning (`pipeline.batch_plan`), pure and up front: inputs found, outputs named,
collisions caught before any work. Files are only listed here, never opened (except by the
end-to-end `plan_batch` check), so most inputs are empty placeholder files.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil

import pytest
from pyproj import CRS

from pipeline.batch import plan_batch
from pipeline.batch_plan import TileJob, crs_code, discover_inputs, plan_outputs
from pipeline.errors import BatchUsageError, CRSInputError
from tests.conftest import good_tiles


def _touch(root: pathlib.Path, *names: str) -> list[str]:
    """Create empty files under ``root``; their absolute paths, in the given order."""
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        paths.append(str(path.resolve()))
    return paths


# --- discover_inputs -----------------------------------------------------------------------


def test_a_folder_gives_its_rasters_sorted_without_hidden_or_other_files(tmp_path) -> None:
    expected = _touch(tmp_path, "a.tif", "b.TIFF", "c.vrt", "d.jp2", "e.img", "f.nc")
    _touch(tmp_path, ".hidden.tif", "notes.txt", "a.tif.aux.xml", "sub/deep.tif")
    (tmp_path / "folder.tif").mkdir()  # a directory named like a raster is not a file
    files, root = discover_inputs(tmp_path)
    assert files == sorted(expected) and root == str(tmp_path.resolve())


def test_recursive_adds_sub_folders_and_keeps_the_top_as_root(tmp_path) -> None:
    top = _touch(tmp_path, "top.tif")
    deep = _touch(tmp_path, "a/one.tif", "a/b/two.tif", "c/three.tiff")
    files, root = discover_inputs(str(tmp_path), recursive=True)
    assert files == sorted(top + deep) and root == str(tmp_path.resolve())


def test_a_pattern_replaces_the_suffix_filter(tmp_path) -> None:
    dat = _touch(tmp_path, "x.dat", "y.dat")
    _touch(tmp_path, "z.tif", "sub/w.dat")
    assert discover_inputs(tmp_path, pattern="*.dat") == (sorted(dat), str(tmp_path.resolve()))
    files, _ = discover_inputs(tmp_path, pattern="*.dat", recursive=True)
    assert files == sorted([*dat, str((tmp_path / "sub" / "w.dat").resolve())])


def test_a_glob_gives_matching_files_rooted_at_their_common_folder(tmp_path) -> None:
    a = _touch(tmp_path, "in/a/one.tif", "in/a/two.tif")
    b = _touch(tmp_path, "in/b/three.tif")
    _touch(tmp_path, "in/a/skip.vrt")
    files, root = discover_inputs(str(tmp_path / "in" / "a" / "*.tif"))
    assert files == sorted(a) and root == str((tmp_path / "in" / "a").resolve())
    files, root = discover_inputs(str(tmp_path / "in" / "**" / "*.tif"))
    assert files == sorted(a + b) and root == str((tmp_path / "in").resolve())


def test_a_list_file_is_read_relative_to_itself(tmp_path) -> None:
    a, b = _touch(tmp_path, "in/a/tile0.tif", "in/b/tile0.tif")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# tiles\nin/a/tile0.tif\n\n   \n  {b}  \n# in/c/none.tif\n")
    files, root = discover_inputs(listing)
    assert files == [a, b] and root == str((tmp_path / "in").resolve())  # list order kept


def test_a_list_of_paths_and_a_single_file(tmp_path, monkeypatch) -> None:
    a, b = _touch(tmp_path, "x/one.tif", "y/two.tif")
    monkeypatch.chdir(tmp_path)
    files, root = discover_inputs(["y/two.tif", pathlib.Path("x/one.tif")])
    assert files == [b, a] and root == str(tmp_path.resolve())
    assert discover_inputs((a,)) == ([a], os.path.dirname(a))
    assert discover_inputs(a) == ([a], os.path.dirname(a))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "missing"), "no such file, folder or matching glob"),
        (lambda p: p, "no input rasters found in folder"),
        (lambda p: str(p / "*.tif"), r"glob '.*\*\.tif' matches no files"),
        (lambda p: [], "no input rasters found in the given paths"),
    ],
    ids=["missing", "empty-folder", "empty-glob", "empty-list"],
)
def test_nothing_to_do_is_a_usage_error(tmp_path, make, message) -> None:
    _touch(tmp_path, "notes.txt")
    with pytest.raises(BatchUsageError, match=message) as info:
        discover_inputs(make(tmp_path))
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)


def test_an_empty_list_file_is_a_usage_error(tmp_path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# nothing yet\n\n")
    with pytest.raises(BatchUsageError, match=r"list\.txt: the list names no inputs") as info:
        discover_inputs(listing)
    assert "\n" not in str(info.value)


# --- crs_code and plan_outputs -------------------------------------------------------------


def test_crs_codes_for_file_names() -> None:
    assert crs_code("EPSG:3857") == "3857"
    assert crs_code(4326) == "4326"
    assert crs_code("ESRI:54009") == "ESRI54009"
    custom = "+proj=tmerc +lat_0=0 +lon_0=13.5 +k=0.9996 +x_0=500000 +y_0=0 +ellps=bessel"
    wkt = CRS.from_user_input(custom).to_wkt()
    assert crs_code(custom) == "crs" + hashlib.sha1(wkt.encode()).hexdigest()[:8]


def test_outputs_mirror_sub_folders_with_the_default_template(tmp_path) -> None:
    files = _touch(tmp_path, "in/a.tif", "in/sub/b.tiff", "in/sub/deeper/c.vrt")
    out = tmp_path / "out"
    jobs = plan_outputs(files, str(tmp_path / "in"), out, "EPSG:3857")
    assert jobs == [
        TileJob(files[0], str(out / "a_3857.tif")),
        TileJob(files[1], str(out / "sub" / "b_3857.tif")),
        TileJob(files[2], str(out / "sub" / "deeper" / "c_3857.tif")),
    ]


def test_name_templates(tmp_path) -> None:
    (f,) = _touch(tmp_path, "in/scene.01.tif")
    root, out = str(tmp_path / "in"), tmp_path / "out"

    def name(template: str) -> str:
        (job,) = plan_outputs([f], root, out, "ESRI:54009", name_template=template)
        assert os.path.dirname(job.output) == str(out)
        return os.path.basename(job.output)

    assert name("{stem}_{crs}.tif") == "scene.01_ESRI54009.tif"
    assert name("{name}") == "scene.01.tif"
    assert name("{stem}{suffix}.{crs}.tif") == "scene.01.tif.ESRI54009.tif"
    assert name("warped-{name}.vrt") == "warped-scene.01.tif.vrt"


@pytest.mark.parametrize("template", ["{nope}.tif", "{0}.tif", "{stem.tif", "{stem!z}.tif"])
def test_bad_name_templates_are_usage_errors(tmp_path, template) -> None:
    files = _touch(tmp_path, "in/a.tif")
    with pytest.raises(BatchUsageError, match="name template") as info:
        plan_outputs(files, str(tmp_path / "in"), tmp_path / "out", 3857, name_template=template)
    message = str(info.value)
    assert repr(template) in message and "{stem}" in message and "\n" not in message


def test_colliding_outputs_name_both_inputs(tmp_path) -> None:
    a, b = _touch(tmp_path, "in/tile.tif", "in/tile.tiff")
    out = tmp_path / "out"
    with pytest.raises(BatchUsageError, match="would both be written") as info:
        plan_outputs([a, b], str(tmp_path / "in"), out, "EPSG:3857")
    message = str(info.value)
    assert a in message and b in message and str(out / "tile_3857.tif") in message
    # {name} keeps them apart
    jobs = plan_outputs([a, b], str(tmp_path / "in"), out, "EPSG:3857", name_template="{name}")
    assert [j.output for j in jobs] == [str(out / "tile.tif"), str(out / "tile.tiff")]


def test_an_output_that_is_an_input_is_refused(tmp_path) -> None:
    a, b = _touch(tmp_path, "in/a.tif", "in/a_3857.tif")
    with pytest.raises(BatchUsageError, match="is an input") as info:
        plan_outputs([a, b], str(tmp_path / "in"), tmp_path / "in", "EPSG:3857")
    assert info.value.args[0].startswith(f"{a}: its output {b}")


# --- plan_batch: the whole plan up front ---------------------------------------------------


def test_a_list_file_and_a_glob_plan_mirrored_outputs(tmp_path) -> None:
    good_tiles(tmp_path / "in" / "a", n=2)
    good_tiles(tmp_path / "in" / "b", n=1)
    listing = tmp_path / "list.txt"
    listing.write_text("# tiles\nin/a/tile0.tif\n\nin/b/tile0.tif\n")
    plan = plan_batch(listing, tmp_path / "out", "EPSG:4326")
    assert [pathlib.Path(j.output).relative_to(tmp_path / "out").as_posix() for j in plan.jobs] == [
        "a/tile0_4326.tif",
        "b/tile0_4326.tif",
    ]
    plan = plan_batch(str(tmp_path / "in" / "a" / "*.tif"), tmp_path / "out2", "EPSG:4326")
    assert [pathlib.Path(j.output).name for j in plan.jobs] == ["tile0_4326.tif", "tile1_4326.tif"]
    assert plan.outdir == str((tmp_path / "out2").resolve())


def test_usage_errors_are_caught_before_any_work(tmp_path) -> None:
    (tile,) = good_tiles(tmp_path / "in", n=1)
    shutil.copyfile(tile, tile.with_suffix(".tiff"))  # same stem: tile0_3857.tif twice
    with pytest.raises(BatchUsageError, match="would both be written"):
        plan_batch(tmp_path / "in", tmp_path / "out", "EPSG:3857")
    plan = plan_batch(tmp_path / "in", tmp_path / "out", "EPSG:3857", name_template="{name}.tif")
    assert len(plan.jobs) == 2  # {name} keeps the suffix apart
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchUsageError, match="no input rasters"):
        plan_batch(tmp_path / "empty", tmp_path / "out", "EPSG:3857")
    with pytest.raises(CRSInputError, match="EPSG:3857"):
        plan_batch(tmp_path / "in", tmp_path / "out2", "EPSG:99999999")
    with pytest.raises(BatchUsageError, match="name template"):
        plan_batch(tmp_path / "in", tmp_path / "out", "EPSG:3857", name_template="{nope}.tif")
    assert not (tmp_path / "out2").exists()
