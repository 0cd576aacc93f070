"""The staged output path: temporary -> optional COG -> fsync -> verify -> atomic publish."""

from __future__ import annotations

import ast
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from pipeline.errors import OutputError, OutputExistsError
from pipeline.io import cog
from pipeline.io.metadata import RasterMetadata, apply_metadata, write_metadata
from pipeline.io.staged import TEMP_SUFFIX, CogStep, staging_profile, write_staged

#: An 8x8 georeferenced GeoTIFF grid for the metadata tests.
GRID = {
    "driver": "GTiff",
    "height": 8,
    "width": 8,
    "crs": "EPSG:32618",
    "transform": rasterio.transform.from_origin(500000.0, 4500000.0, 30.0, 30.0),
}
PALETTE = {0: (0, 0, 0, 255), 1: (255, 0, 0, 255), 2: (0, 255, 0, 255)}


def _source(shared_data: pathlib.Path) -> tuple[np.ndarray, dict[str, Any]]:
    """RGB.byte.tif's pixels and a tiled GeoTIFF profile for them (no creation options yet)."""
    with rasterio.open(shared_data / "RGB.byte.tif") as ds:
        data = ds.read()
        profile = {
            "driver": "GTiff",
            "count": ds.count,
            "height": ds.height,
            "width": ds.width,
            "dtype": ds.dtypes[0],
            "crs": ds.crs,
            "transform": ds.transform,
            "nodata": ds.nodata,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
        }
    return data, profile


def _writer(
    shared_data: pathlib.Path, *, as_cog: bool = False, seen: list[str] | None = None
) -> tuple[np.ndarray, Callable[[str], None]]:
    data, profile = _source(shared_data)
    profile.update(staging_profile(data.dtype, cog=as_cog))

    def write(tmp: str) -> None:
        if seen is not None:
            seen.append(tmp)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)

    return data, write


def _cog_step(data: np.ndarray) -> CogStep:
    return CogStep(dtype=data.dtype, height=data.shape[1], width=data.shape[2], blocksize=512)


@pytest.mark.parametrize("as_cog", [False, True], ids=["gtiff", "cog"])
def test_published_file_is_the_verified_one_and_no_temporary_is_left(
    shared_data, tmp_path, as_cog
) -> None:
    dst = str(tmp_path / "out.tif")
    written: list[str] = []
    data, write = _writer(shared_data, as_cog=as_cog, seen=written)
    verified: list[tuple[str, bytes]] = []

    def verify(path: str) -> None:
        with rasterio.open(path) as ds:  # complete and readable before it is published
            np.testing.assert_array_equal(ds.read(), data)
        verified.append((path, pathlib.Path(path).read_bytes()))

    assert write_staged(dst, write, cog=_cog_step(data) if as_cog else None, verify=verify) == dst
    [(checked, content)] = verified
    assert os.path.dirname(checked) == str(tmp_path)  # same folder: same filesystem
    assert os.path.basename(checked).startswith(".out.tif.") and checked.endswith(TEMP_SUFFIX)
    if as_cog:  # the COG copy, a second temporary, is what gets verified and published
        assert checked != written[0]
    else:
        assert checked == written[0]
    assert pathlib.Path(dst).read_bytes() == content
    assert os.listdir(tmp_path) == ["out.tif"]
    with rasterio.open(dst) as ds:
        np.testing.assert_array_equal(ds.read(), data)
        assert ds.compression is not None
    if as_cog:
        valid, errors, warnings = cog_validate(dst, strict=True, quiet=True)
        assert valid, (errors, warnings)
        with rasterio.open(dst) as ds:
            assert ds.overviews(1) == [2]


@pytest.mark.parametrize("as_cog", [False, True], ids=["gtiff", "cog"])
def test_a_failing_verify_hook_leaves_no_output_and_no_temporary(
    shared_data, tmp_path, as_cog
) -> None:
    data, write = _writer(shared_data, as_cog=as_cog)
    seen: list[str] = []

    def verify(path: str) -> None:
        seen.append(path)
        assert os.path.getsize(path) > 0
        raise OutputError("planted verification failure")

    with pytest.raises(OutputError, match="planted verification failure"):
        write_staged(
            str(tmp_path / "out.tif"), write, cog=_cog_step(data) if as_cog else None,
            verify=verify,
        )  # fmt: skip
    assert len(seen) == 1
    assert os.listdir(tmp_path) == []


def test_an_existing_output_is_not_clobbered_without_overwrite(shared_data, tmp_path) -> None:
    target = tmp_path / "out.tif"
    target.write_bytes(b"previous result")
    _, write = _writer(shared_data)
    verified: list[str] = []
    with pytest.raises(OutputExistsError, match="left untouched"):
        write_staged(str(target), write, verify=verified.append)
    assert len(verified) == 1  # the check is at publish time: a file may appear while writing
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.tif"]


def test_overwrite_replaces_an_existing_output(shared_data, tmp_path) -> None:
    target = tmp_path / "out.tif"
    target.write_bytes(b"previous result")
    data, write = _writer(shared_data)
    write_staged(str(target), write, overwrite=True)
    with rasterio.open(target) as ds:
        np.testing.assert_array_equal(ds.read(), data)
    assert os.listdir(tmp_path) == ["out.tif"]


def test_a_cog_failure_after_both_temporaries_exist_removes_both(
    shared_data, tmp_path, monkeypatch
) -> None:
    made: list[str] = []
    real_translate = cog.translate_to_cog

    def translate(staging: str, dst: str, options: Any) -> None:
        real_translate(staging, dst, options)
        made.extend([staging, dst])

    monkeypatch.setattr(cog, "translate_to_cog", translate)
    monkeypatch.setattr(cog, "cog_report", lambda path: cog.CogReport(False, ["planted"]))
    target = tmp_path / "out.tif"
    target.write_bytes(b"previous result")
    data, write = _writer(shared_data, as_cog=True)
    with pytest.raises(OutputError, match="planted"):
        write_staged(str(target), write, overwrite=True, cog=_cog_step(data))
    staging, final = made
    assert staging != final and all(p.endswith(TEMP_SUFFIX) for p in made)
    assert not os.path.exists(staging) and not os.path.exists(final)
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.tif"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_write_leaves_no_temporary(shared_data, tmp_path, exc) -> None:
    _, write = _writer(shared_data)

    def write_then_stop(tmp: str) -> None:
        write(tmp)
        assert os.path.getsize(tmp) > 0
        raise exc("stopped while writing")

    with pytest.raises(exc, match="stopped while writing"):
        write_staged(str(tmp_path / "out.tif"), write_then_stop)
    assert os.listdir(tmp_path) == []


def test_staging_profile_is_fast_for_a_cog_and_the_caller_s_otherwise() -> None:
    cog_stage = staging_profile(np.dtype("float32"), cog=True, creation_options={"zlevel": 9})
    assert cog_stage["COMPRESS"] == "ZSTD" and "ZLEVEL" not in cog_stage
    plain = staging_profile(np.dtype("float32"), cog=False, creation_options={"zlevel": 9})
    assert plain["COMPRESS"] == "deflate" and plain["PREDICTOR"] == 3 and plain["ZLEVEL"] == 9


def test_metadata_drops_statistics_tags_and_skips_what_does_not_fit(tmp_path) -> None:
    path = str(tmp_path / "m.tif")
    profile = {"count": 1, "dtype": "uint8", **GRID}
    meta = RasterMetadata(
        tags={"AREA": "north", "STATISTICS_MEAN": "1.5"},
        descriptions=("classes",),
        colormap=PALETTE,
        colorinterp=("red", "green"),  # one name per band or nothing
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.zeros((1, 8, 8), "uint8"))
        apply_metadata(ds, meta)
    with rasterio.open(path) as ds:
        assert ds.tags()["AREA"] == "north" and "STATISTICS_MEAN" not in ds.tags()
        assert ds.descriptions == ("classes",)
        assert {k: ds.colormap(1)[k] for k in PALETTE} == PALETTE
        assert ds.colorinterp[0].name == "palette"


def test_write_metadata_opens_the_file_only_when_something_applies(tmp_path) -> None:
    missing = str(tmp_path / "never-written.tif")
    misfit = RasterMetadata(colormap=PALETTE, colorinterp=("red", "green", "blue"))
    assert write_metadata(missing, misfit, count=1, dtype="float32") is False
    path = str(tmp_path / "rgb.tif")
    profile = {"count": 3, "dtype": "uint16", **GRID}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.zeros((3, 8, 8), "uint16"))
    bgr = RasterMetadata(colorinterp=("blue", "green", "red"))
    assert write_metadata(path, bgr, count=3, dtype="uint16") is True
    with rasterio.open(path) as ds:
        assert [c.name for c in ds.colorinterp] == ["blue", "green", "red"]


def _imported_modules(module: str) -> set[str]:
    """Every ``pipeline`` module ``module`` imports, at the top or inside functions."""
    root = pathlib.Path(__file__).resolve().parents[1]
    tree = ast.parse((root / (module.replace(".", "/") + ".py")).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("pipeline")}


def test_cog_and_staged_do_not_import_write_and_write_s_helpers_live_below_it() -> None:
    for low in ("pipeline.io.cog", "pipeline.io.profile", "pipeline.io.staged"):
        assert "pipeline.io.write" not in _imported_modules(low), low
    assert "pipeline.io.staged" not in _imported_modules("pipeline.io.cog")
