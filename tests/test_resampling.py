"""The one resampling table: names GDAL understands, radii, normalisation."""

from __future__ import annotations

import re

import pytest
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from pipeline.errors import ReprojectError
from pipeline.warp.resampling import METHODS, resampling_name


def test_every_rasterio_warp_method_is_in_the_table() -> None:
    warp_methods = {m.name for m in Resampling if m.value <= Resampling.rms.value}
    warp_methods -= {"gauss"}  # overview-only in GDAL
    assert set(METHODS) == warp_methods


def test_resampling_names_are_the_ones_gdal_writes(shared_data, tmp_path) -> None:
    """GDAL reads an unknown ``ResampleAlg`` as nearest, silently: compare with its own XML."""
    with rasterio.open(shared_data / "byte.tif") as src:
        for method, (name, _radius) in METHODS.items():
            with WarpedVRT(src, crs="EPSG:4326", resampling=Resampling[method]) as vrt:
                rasterio.shutil.copy(vrt, tmp_path / f"{method}.vrt", driver="VRT")
            xml = (tmp_path / f"{method}.vrt").read_text()
            assert re.search(r"<ResampleAlg>(.*?)</ResampleAlg>", xml).group(1) == name


def test_names_are_normalised_and_unknown_ones_refused() -> None:
    assert resampling_name("Bilinear") == "bilinear"
    assert resampling_name(Resampling.cubic_spline) == "cubic_spline"
    with pytest.raises(ReprojectError, match="unknown resampling 'gauss'"):
        resampling_name("gauss")


def test_area_methods_reach_one_pixel_and_lanczos_three() -> None:
    assert METHODS["lanczos"].radius == 3
    assert {METHODS[m].radius for m in ("average", "mode", "sum", "rms", "nearest")} == {1}
