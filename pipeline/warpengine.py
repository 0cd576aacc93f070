"""GDAL warp of one destination window, bit-identical whatever the chunking.

`warp_window` warps a window of the destination grid from a window of source pixels held in
memory. The result equals the same window of a warp of the whole source array in one go with
the same `WarpSpec` (`warp_window` with the whole array and the whole destination), pixel for
pixel, for every resampling GDAL's warper offers except ``sum`` on GDAL < 3.12.1 (below).

GDAL workarounds, all in this module:

1. Exact transformer. Every rasterio 1.4 warp entry point wraps GDAL's transformer in the
   approximate one (``rasterio.warp.reproject`` fixes its error at 0.125 pixel and ignores
   ``tolerance``; ``WarpedVRT(tolerance=0)`` fails to build its VRT). Its linear
   interpolation runs per output row segment, so results depend on the chunking. We write the
   warped VRT's XML ourselves with a bare ``GenImgProjTransformer`` (no ``ApproxTransformer``),
   which works on every rasterio and GDAL 3.x. Opt-in: ``WarpSpec.error_threshold`` > 0
   wraps it in GDAL's ``ApproxTransformer`` with that ``MaxError`` (gdalwarp's ``-et``, in
   source pixels; the XML GDAL 3.10 itself writes for ``WarpedVRT(tolerance=...)``): faster,
   and equal to ``rasterio.warp.reproject`` with GDAL's defaults for 0.125 and a single
   destination chunk, but then each warp call approximates on its own and results depend on
   the chunking. With 0 the XML is unchanged.
2. Same coordinates in every chunk. The warped VRT always spans the whole destination grid
   (its geotransform is the global one) and we read only our window from it; the source is a
   VRT spanning the whole source grid whose only data is our padded window at its true
   offset. Pixel-to-georeference arithmetic is then identical, bit for bit, to the
   whole-raster warp (a per-chunk geotransform would round differently).
3. One kernel footprint. GDAL computes XSCALE/YSCALE per warp chunk, which is what leaves
   seams for downsampling kernels; we pass the whole-raster values
   (`pipeline.warpgrid.warp_scale`, which reproduces GDAL's own computation). Measured
   without them, 37-pixel chunks of a 30 m UTM raster warped to 45 m EPSG:3857: 87% of
   bilinear, cubic and lanczos pixels differ from the whole-array warp.
4. ``SOURCE_EXTRA``: GDAL pads each of its internal source windows by a radius derived from
   its own per-chunk scale, not from XSCALE; we add the kernel halo on top so that no tap of
   the global-scale kernel can fall outside GDAL's window. A safety margin: with 6 in place
   no case in the test-suite needs it.
5. ``NUM_THREADS=1`` (dask provides the parallelism) and the same ``AREA_OF_INTEREST`` (from
   the whole source extent) for PROJ's choice of operation in every chunk.
6. Always-masked kernels. GDAL drops the validity mask of a warp chunk whose source window
   holds no nodata pixel and then runs unmasked kernels, which round differently (lanczos on
   float64: 1e-13 differences in small chunks next to nodata-free edges). The source VRT has a
   per-dataset mask band (255 on our window, 0 around it) that GDAL never drops, so every
   chunk, and the whole-array warp, run the same masked kernels.
7. Resampling names as GDAL writes them in warped-VRT XML (``Maximum``, ``Quartile1``,
   ``RootMeanSquare``...): an unknown ``ResampleAlg`` silently means nearest neighbour.

Known GDAL limitation: ``sum`` resampling has chunk-dependent artifacts in GDAL < 3.12.1
(OSGeo/gdal#13539, fixed by OSGeo/gdal#13541), even within one GDAL warp; reprojection with
``sum`` then differs from the whole-array warp near GDAL's internal chunk edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.windows import Window as RioWindow

from pipeline.warpgrid import GridSpec, Window

#: numpy dtype name -> GDAL data type name.
GDAL_DATA_TYPES: dict[str, str] = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
}

#: rasterio resampling name -> ``ResampleAlg`` name in GDAL's warped-VRT XML (as GDAL writes
#: it; an unknown name silently falls back to nearest neighbour).
GDAL_RESAMPLING: dict[str, str] = {
    "nearest": "NearestNeighbour",
    "bilinear": "Bilinear",
    "cubic": "Cubic",
    "cubic_spline": "CubicSpline",
    "lanczos": "Lanczos",
    "average": "Average",
    "mode": "Mode",
    "max": "Maximum",
    "min": "Minimum",
    "med": "Median",
    "q1": "Quartile1",
    "q3": "Quartile3",
    "sum": "Sum",
    "rms": "RootMeanSquare",
}

#: GDAL's default warp memory; chunks larger than this are split by GDAL (still exact).
WARP_MEMORY_LIMIT = 64 * 2**20


def _num(value: float) -> str:
    """A float as text that GDAL parses back to the same double (``nan``/``inf`` too)."""
    v = float(value)
    if math.isnan(v):
        return "nan"
    return repr(v)


def _geotransform(transform: Affine) -> str:
    return ",".join(_num(v) for v in transform.to_gdal())


def area_of_interest(src: GridSpec) -> tuple[float, float, float, float] | None:
    """Source extent in degrees of its own geographic CRS (GDAL's ``AREA_OF_INTEREST``)."""
    try:
        crs = ProjCRS.from_wkt(src.crs.to_wkt())
        geodetic = crs.geodetic_crs
        if geodetic is None:
            return None
        transformer = Transformer.from_crs(crs, geodetic, always_xy=True)
        west, south, east, north = transformer.transform_bounds(*src.bounds, densify_pts=21)
    except Exception:  # pyproj raises several types; the option is only a hint to PROJ
        return None
    values = (west, south, east, north)
    if not all(math.isfinite(v) for v in values):
        return None
    return (float(west), float(south), float(east), float(north))


@dataclass(frozen=True)
class WarpSpec:
    """Everything that defines a warp, identical for every chunk of one reprojection.

    Attributes
    ----------
    src, dst : GridSpec
        Whole source and destination grids.
    resampling : str
        A key of `GDAL_RESAMPLING`.
    dtype : str
        numpy dtype name of source, destination and GDAL's working type.
    count : int
        Number of bands.
    src_nodata, dst_nodata : float or None
        Source nodata (never used as data) and destination fill/nodata (None: fill with 0).
    xscale, yscale : float
        Global kernel scales (`pipeline.warpgrid.warp_scale`).
    source_extra : int
        GDAL's ``SOURCE_EXTRA``: source pixels added around every GDAL-internal window.
    aoi : (west, south, east, north) or None
        PROJ area of interest in degrees.
    error_threshold : float
        Largest error of GDAL's approximate transformer in source pixels (gdalwarp's
        ``-et``); 0 (the default) uses the exact transformer. With a threshold > 0 every
        warp call approximates on its own, so chunked results depend on the chunking.
    """

    src: GridSpec
    dst: GridSpec
    resampling: str
    dtype: str
    count: int
    src_nodata: float | None
    dst_nodata: float | None
    xscale: float
    yscale: float
    source_extra: int
    aoi: tuple[float, float, float, float] | None = None
    error_threshold: float = 0.0

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (
            "WarpSpec",
            self.src.__dask_tokenize__(),
            self.dst.__dask_tokenize__(),
            self.resampling,
            self.dtype,
            self.count,
            None if self.src_nodata is None else _num(self.src_nodata),
            None if self.dst_nodata is None else _num(self.dst_nodata),
            _num(self.xscale),
            _num(self.yscale),
            self.source_extra,
            self.aoi,
            _num(self.error_threshold),
        )

    def warp_options(self) -> dict[str, str]:
        """GDAL warp options (``-wo``) shared by every chunk."""
        return {
            "INIT_DEST": "NO_DATA",
            "UNIFIED_SRC_NODATA": "YES",
            "XSCALE": _num(self.xscale),
            "YSCALE": _num(self.yscale),
            "SOURCE_EXTRA": str(self.source_extra),
            "NUM_THREADS": "1",
            "ERROR_OUT_IF_EMPTY_SOURCE_WINDOW": "FALSE",
        }

    def source_vrt_xml(self, path: str, window: Window) -> str:
        """A VRT on the whole source grid whose only data is ``window``, read from ``path``.

        Its per-dataset mask is valid (255) exactly on ``window``: GDAL then always runs its
        masked kernels (workaround 6 in the module docstring) and never uses the fill around
        the window as data.
        """
        gdal_type = GDAL_DATA_TYPES[self.dtype]
        h, w = window.shape
        nodata = (
            "" if self.src_nodata is None else f"<NoDataValue>{_num(self.src_nodata)}</NoDataValue>"
        )
        rects = (
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{window.col0}" yOff="{window.row0}" xSize="{w}" ySize="{h}"/>'
        )
        source = f'<SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
        bands = "".join(
            f'<VRTRasterBand dataType="{gdal_type}" band="{b}">{nodata}<SimpleSource>'
            f"{source}<SourceBand>{b}</SourceBand>{rects}</SimpleSource></VRTRasterBand>"
            for b in range(1, self.count + 1)
        )
        mask = (
            '<MaskBand><VRTRasterBand dataType="Byte"><ComplexSource>'
            f"{source}<SourceBand>1</SourceBand>{rects}"
            "<ScaleOffset>255</ScaleOffset><ScaleRatio>0</ScaleRatio>"
            "</ComplexSource></VRTRasterBand></MaskBand>"
        )
        return (
            f'<VRTDataset rasterXSize="{self.src.width}" rasterYSize="{self.src.height}">'
            f"<SRS>{escape(self.src.crs.to_wkt())}</SRS>"
            f"<GeoTransform>{_geotransform(self.src.transform)}</GeoTransform>"
            f"{bands}{mask}</VRTDataset>"
        )

    def warped_vrt_xml(
        self,
        source_path: str,
        *,
        memory_limit: int = WARP_MEMORY_LIMIT,
        block: tuple[int, int] | None = None,
    ) -> str:
        """A ``VRTWarpedDataset`` on the whole destination grid.

        The transformer is exact (a bare ``GenImgProjTransformer``) when
        ``error_threshold`` is 0, otherwise GDAL's ``ApproxTransformer`` around it with
        ``MaxError`` = ``error_threshold`` (source pixels, as gdalwarp ``-et``).

        ``block`` is the VRT's ``(rows, cols)`` block shape: GDAL warps whole blocks, so
        destination chunks should be made of whole blocks (default 128 x 512).
        """
        gdal_type = GDAL_DATA_TYPES[self.dtype]
        src_wkt, dst_wkt = escape(self.src.crs.to_wkt()), escape(self.dst.crs.to_wkt())
        dst_nd = (
            "" if self.dst_nodata is None else f"<NoDataValue>{_num(self.dst_nodata)}</NoDataValue>"
        )
        bands = "".join(
            f'<VRTRasterBand dataType="{gdal_type}" band="{b}" subClass="VRTWarpedRasterBand">'
            f"{dst_nd}</VRTRasterBand>"
            for b in range(1, self.count + 1)
        )
        mapping = ""
        if self.src_nodata is not None:
            mapping += (
                f"<SrcNoDataReal>{_num(self.src_nodata)}</SrcNoDataReal>"
                "<SrcNoDataImag>0</SrcNoDataImag>"
            )
        if self.dst_nodata is not None:
            mapping += (
                f"<DstNoDataReal>{_num(self.dst_nodata)}</DstNoDataReal>"
                "<DstNoDataImag>0</DstNoDataImag>"
            )
        band_list = "".join(
            f'<BandMapping src="{b}" dst="{b}">{mapping}</BandMapping>'
            for b in range(1, self.count + 1)
        )
        options = "".join(
            f'<Option name="{k}">{v}</Option>' for k, v in self.warp_options().items()
        )
        aoi = ""
        if self.aoi is not None:
            aoi = (
                '<Options><Option key="AREA_OF_INTEREST">'
                + ",".join(_num(v) for v in self.aoi)
                + "</Option></Options>"
            )
        transformer = (
            "<GenImgProjTransformer>"
            f"<SrcGeoTransform>{_geotransform(self.src.transform)}</SrcGeoTransform>"
            f"<DstGeoTransform>{_geotransform(self.dst.transform)}</DstGeoTransform>"
            "<ReprojectTransformer><ReprojectionTransformer>"
            f"<SourceSRS>{src_wkt}</SourceSRS><TargetSRS>{dst_wkt}</TargetSRS>{aoi}"
            "</ReprojectionTransformer></ReprojectTransformer>"
            "</GenImgProjTransformer>"
        )
        if self.error_threshold > 0:
            # What GDAL 3.10 itself writes for gdalwarp -et / WarpedVRT(tolerance=...).
            transformer = (
                f"<ApproxTransformer><MaxError>{_num(self.error_threshold)}</MaxError>"
                f"<BaseTransformer>{transformer}</BaseTransformer></ApproxTransformer>"
            )
        block_h, block_w = block if block is not None else (128, 512)
        block_h, block_w = min(self.dst.height, block_h), min(self.dst.width, block_w)
        return (
            f'<VRTDataset rasterXSize="{self.dst.width}" rasterYSize="{self.dst.height}" '
            f'subClass="VRTWarpedDataset"><SRS>{dst_wkt}</SRS>'
            f"<GeoTransform>{_geotransform(self.dst.transform)}</GeoTransform>{bands}"
            f"<BlockXSize>{block_w}</BlockXSize><BlockYSize>{block_h}</BlockYSize>"
            f"<GDALWarpOptions><WarpMemoryLimit>{int(memory_limit)}</WarpMemoryLimit>"
            f"<ResampleAlg>{GDAL_RESAMPLING[self.resampling]}</ResampleAlg>"
            f"<WorkingDataType>{gdal_type}</WorkingDataType>{options}"
            f'<SourceDataset relativeToVRT="0">{escape(source_path)}</SourceDataset>'
            f"<Transformer>{transformer}</Transformer>"
            f"<BandList>{band_list}</BandList></GDALWarpOptions></VRTDataset>"
        )


def warp_window(
    spec: WarpSpec,
    source: np.ndarray,
    source_window: Window,
    dst_window: Window,
    *,
    memory_limit: int = WARP_MEMORY_LIMIT,
    block: tuple[int, int] | None = None,
) -> np.ndarray:
    """Warp ``dst_window`` of the destination grid from the source pixels in ``source``.

    Parameters
    ----------
    spec : WarpSpec
        The warp (grids, resampling, nodata, scales), shared by all chunks.
    source : numpy.ndarray
        ``(band, rows, cols)`` source pixels of ``source_window`` (dtype ``spec.dtype``).
        It must cover every source pixel the destination window's kernels touch
        (`pipeline.warpgrid.source_windows` guarantees that); pixels outside it read as
        source nodata (or 0).
    source_window : Window
        Where ``source`` sits in the whole source grid.
    dst_window : Window
        The destination window to compute.
    memory_limit : int
        GDAL's warp memory in bytes (larger windows are split by GDAL, still exactly).
    block : (int, int), optional
        Block shape of the warped VRT. GDAL warps whole blocks, so ``dst_window`` should be
        made of whole blocks (only a matter of speed: results do not depend on it).

    Returns
    -------
    numpy.ndarray
        ``(band, rows, cols)`` of dtype ``spec.dtype``; areas without source data hold
        ``spec.dst_nodata`` (0 when None). Runs GDAL in the calling thread only.
    """
    if source.shape != (spec.count, *source_window.shape):
        raise ValueError(
            f"source block of shape {source.shape} does not match window {source_window}"
        )
    h, w = source_window.shape
    data = np.ascontiguousarray(source, dtype=spec.dtype)
    window_transform = spec.src.transform * Affine.translation(
        source_window.col0, source_window.row0
    )
    with MemoryFile(ext=".tif") as raw:
        with raw.open(
            driver="GTiff",
            width=w,
            height=h,
            count=spec.count,
            dtype=spec.dtype,
            crs=spec.src.crs,
            transform=window_transform,
        ) as ds:
            ds.write(data)
        source_xml = spec.source_vrt_xml(raw.name, source_window)
        with MemoryFile(source_xml.encode(), ext=".vrt") as src_vrt:
            warped_xml = spec.warped_vrt_xml(src_vrt.name, memory_limit=memory_limit, block=block)
            with MemoryFile(warped_xml.encode(), ext=".vrt") as warped, warped.open() as vrt:
                dh, dw = dst_window.shape
                out: np.ndarray = vrt.read(
                    window=RioWindow(dst_window.col0, dst_window.row0, dw, dh),
                )
    return out


def warp_array(spec: WarpSpec, source: np.ndarray) -> np.ndarray:
    """Warp the whole in-memory source array onto the whole destination grid in one go.

    The reference every chunked result is checked against: `warp_window` with the whole
    source and the whole destination window.
    """
    return warp_window(
        spec,
        source,
        Window(0, spec.src.height, 0, spec.src.width),
        Window(0, spec.dst.height, 0, spec.dst.width),
        memory_limit=max(WARP_MEMORY_LIMIT, 4 * source.nbytes + 4 * _dst_nbytes(spec)),
    )


def _dst_nbytes(spec: WarpSpec) -> int:
    return spec.count * spec.dst.width * spec.dst.height * np.dtype(spec.dtype).itemsize


__all__ = [
    "GDAL_DATA_TYPES",
    "GDAL_RESAMPLING",
    "WarpSpec",
    "area_of_interest",
    "warp_array",
    "warp_window",
]
