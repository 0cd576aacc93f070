"""Per-CRS caches of the warp maths: a cached result equals the one computed from scratch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.crs import CRS

from pipeline.errors import CRSInputError
from pipeline.warp import grid as warpgrid
from pipeline.warp.grid import GridSpec
from pipeline.warp.spec import WarpOptions, make_spec
from tests.conftest import utm_grid

CACHES = (
    warpgrid._parse_crs_cached,
    warpgrid._geodetic_transformer,
    warpgrid._is_mercator_wkt,
    warpgrid._cached_transformer,
)


def _clear() -> None:
    for cache in CACHES:
        cache.cache_clear()


def _tiles() -> list[GridSpec]:
    """Neighbouring UTM tiles and a geographic one that a Mercator destination clamps."""
    utm = [utm_grid(height=64, width=80) for _ in range(2)]
    utm[1] = GridSpec(utm[1].crs, Affine(30, 0, 502400, 0, -30, 4498080), 80, 64)
    geo = GridSpec(CRS.from_epsg(4326), Affine(1.0, 0, -10, 0, -1.0, 89.5), 20, 10)
    return [*utm, geo]


@pytest.mark.parametrize("dst_crs", ["EPSG:3857", "EPSG:4326", "EPSG:32618"])
def test_make_spec_is_identical_cold_and_warm(dst_crs) -> None:
    opts = WarpOptions(resampling="bilinear")
    cold = []
    for src in _tiles():
        _clear()
        cold.append(make_spec(src, np.dtype("uint8"), 3, None, dst_crs, opts))
    warm = [make_spec(src, np.dtype("uint8"), 3, None, dst_crs, opts) for src in _tiles()]
    again = [make_spec(src, np.dtype("uint8"), 3, None, dst_crs, opts) for src in _tiles()]
    assert cold == warm == again
    assert warpgrid._parse_crs_cached.cache_info().hits > 0


def test_area_of_interest_matches_a_fresh_transformer() -> None:
    for src in _tiles():
        crs = ProjCRS.from_wkt(src.crs.to_wkt())
        fresh = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
        expected = tuple(float(v) for v in fresh.transform_bounds(*src.bounds, densify_pts=21))
        assert warpgrid.area_of_interest(src) == expected
        assert warpgrid.area_of_interest(src) == expected  # cached transformer


def test_parse_crs_cache_returns_equal_crs_and_keeps_errors() -> None:
    wkt = CRS.from_epsg(3857).to_wkt()
    _clear()
    assert warpgrid.parse_crs(wkt) == warpgrid._parse_crs(wkt)
    assert warpgrid.parse_crs(3857) == warpgrid._parse_crs(3857)
    for _ in range(2):  # an error is raised every time, never cached as a value
        with pytest.raises(CRSInputError, match="not recognised"):
            warpgrid.parse_crs("EPSG:999999")


def test_transformers_are_per_thread() -> None:
    wkt = CRS.from_epsg(32618).to_wkt()
    here = warpgrid._geodetic_transformer(wkt, threading.get_ident())
    assert warpgrid._geodetic_transformer(wkt, threading.get_ident()) is here
    other: list[object] = []
    t = threading.Thread(
        target=lambda: other.append(warpgrid._geodetic_transformer(wkt, threading.get_ident()))
    )
    t.start()
    t.join()
    assert other[0] is not here
