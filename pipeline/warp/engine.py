"""GDAL's warper driven so that a window's pixels never depend on the chunking.

`warp_window` warps a window of the destination grid from a window of source pixels held in
memory. The result equals the same window of `warp_array` -- the warp of the whole source
array in one go with the same `pipeline.warp.spec.WarpSpec` -- pixel for pixel, for every
resampling GDAL's warper offers except ``sum`` on GDAL < 3.12.1 (below), with both
transformers.

Every GDAL workaround lives in this module:

1. Transformer. GDAL's default, as gdalwarp and ``rio warp``: its approximate transformer
   (``ApproxTransformer``, ``MaxError`` = ``WarpSpec.error_threshold``, 0.125 source pixel by
   default) around the exact one. ``error_threshold=0`` writes the bare exact
   ``GenImgProjTransformer``. rasterio 1.4 cannot express either choice
   (``rasterio.warp.reproject`` fixes the error at 0.125 and ignores ``tolerance``;
   ``WarpedVRT(tolerance=0)`` fails to build its VRT), so we write the warped VRT's XML
   ourselves -- the XML GDAL 3.10 itself writes for ``WarpedVRT(tolerance=...)``.
2. One block grid. The approximate transformer interpolates source positions along each row
   of each warp GDAL runs, so its result depends on where those warps start and end. The
   warped VRT has one block shape for the whole destination grid
   (`pipeline.warp.grid.warp_block_shape`, a function of the destination grid alone) and is
   read with ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO``: every block is then warped on its own
   (``VRTWarpedDataset::IReadBlock``), whatever window a chunk reads. Without that option
   GDAL >= 3.9 warps a multi-block read window in one go (``VRTWarpedDataset::IRasterIO``) and
   the approximation follows the reader's window (reported on RGB.byte.tif to EPSG:3857: only
   97% of nearest and 82% of bilinear values identical across chunkings). A chunk that does not
   cover whole blocks still gets its pixels from whole-block warps, only more slowly.
3. Same coordinates in every chunk. The warped VRT always spans the whole destination grid
   (its geotransform is the global one) and we read only our window from it; the source is a
   VRT spanning the whole source grid whose only data is our padded window at its true
   offset. Pixel-to-georeference arithmetic is then identical, bit for bit, to the
   whole-raster warp (a per-chunk geotransform would round differently).
4. One kernel footprint. GDAL computes XSCALE/YSCALE per warp, which is what leaves seams for
   downsampling kernels; we pass the whole-raster values (`pipeline.warp.grid.warp_scale`,
   which reproduces GDAL's own computation). Measured without them, 37-pixel chunks of a 30 m
   UTM raster warped to 45 m EPSG:3857: 87% of bilinear, cubic and lanczos pixels differ
   from the whole-array warp.
5. ``SOURCE_EXTRA``: GDAL pads each of its internal source windows by a radius derived from
   its own per-warp scale, not from XSCALE; we add the kernel halo on top so that no tap of
   the global-scale kernel can fall outside GDAL's window.
6. ``NUM_THREADS=1`` (dask provides the parallelism) and the same ``AREA_OF_INTEREST`` (from
   the whole source extent) for PROJ's choice of operation in every chunk.
7. One kind of kernel. GDAL drops the validity mask of a warp whose source window holds no
   nodata pixel and then runs unmasked kernels, which round differently (lanczos on float64:
   1e-13 differences in small chunks next to nodata-free edges). With a source nodata the
   source VRT has a per-dataset mask band (255 on our window, 0 around it) that GDAL never
   drops, so every chunk, and the whole-array warp, run the same masked kernels. Without one
   there is no mask anywhere, so all run GDAL's unmasked kernels, about 3x faster, as GDAL's
   own warp is without a nodata value (benchmarks/RESULTS.md).
8. Resampling names as GDAL writes them in warped-VRT XML (`pipeline.warp.resampling`): an
   unknown ``ResampleAlg`` silently means nearest neighbour.

Known GDAL limitation: ``sum`` resampling has chunk-dependent artifacts in GDAL < 3.12.1
(OSGeo/gdal#13539, fixed by OSGeo/gdal#13541), even within one GDAL warp: with the fixed block
grid a chunked ``sum`` still differs from the whole-array warp in a few values, by one
(``tests/test_error_threshold.py``); `warn_if_chunk_dependent` says so.
"""

from __future__ import annotations

import warnings
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.windows import Window as RioWindow

from pipeline.errors import PipelineWarning
from pipeline.warp.grid import Window
from pipeline.warp.resampling import METHODS
from pipeline.warp.spec import GDAL_DATA_TYPES, WarpSpec, float_text

#: GDAL configuration for reading a warped VRT: every block is warped on its own (workaround 2).
BLOCK_BY_BLOCK = {"GDAL_VRT_WARP_USE_DATASET_RASTERIO": "NO"}

#: GDAL version whose ``sum`` resampling is chunking-invariant (OSGeo/gdal#13541).
GDAL_SUM_FIXED = (3, 12, 1)

#: GDAL's default warp memory per block warp (a block needing more is split by GDAL, the same
#: way for every chunking).
WARP_MEMORY_LIMIT = 64 * 2**20


def _geotransform(transform: Affine) -> str:
    return ",".join(float_text(v) for v in transform.to_gdal())


def warp_options(spec: WarpSpec) -> dict[str, str]:
    """GDAL warp options (``-wo``) shared by every chunk."""
    return {
        "INIT_DEST": "NO_DATA",
        "UNIFIED_SRC_NODATA": "YES",
        "XSCALE": float_text(spec.xscale),
        "YSCALE": float_text(spec.yscale),
        "SOURCE_EXTRA": str(spec.source_extra),
        "NUM_THREADS": "1",
        "ERROR_OUT_IF_EMPTY_SOURCE_WINDOW": "FALSE",
    }


def source_vrt_xml(spec: WarpSpec, path: str, window: Window) -> str:
    """A VRT on the whole source grid whose only data is ``window``, read from ``path``.

    With a source nodata, its per-dataset mask is valid (255) exactly on ``window``: GDAL
    then always runs its masked kernels (workaround 7 in the module docstring). Without one
    there is no mask and GDAL always runs its unmasked kernels, about 3x faster; the fill
    around the window is then plain zeros, which no tap of a pixel of the chunk reaches (the
    window is padded by `pipeline.warp.spec.WarpSpec.halo`).
    """
    gdal_type = GDAL_DATA_TYPES[spec.dtype]
    h, w = window.shape
    nodata = (
        ""
        if spec.src_nodata is None
        else f"<NoDataValue>{float_text(spec.src_nodata)}</NoDataValue>"
    )
    rects = (
        f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
        f'<DstRect xOff="{window.col0}" yOff="{window.row0}" xSize="{w}" ySize="{h}"/>'
    )
    source = f'<SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
    bands = "".join(
        f'<VRTRasterBand dataType="{gdal_type}" band="{b}">{nodata}<SimpleSource>'
        f"{source}<SourceBand>{b}</SourceBand>{rects}</SimpleSource></VRTRasterBand>"
        for b in range(1, spec.count + 1)
    )
    mask = (
        ""
        if spec.src_nodata is None
        else '<MaskBand><VRTRasterBand dataType="Byte"><ComplexSource>'
        f"{source}<SourceBand>1</SourceBand>{rects}"
        "<ScaleOffset>255</ScaleOffset><ScaleRatio>0</ScaleRatio>"
        "</ComplexSource></VRTRasterBand></MaskBand>"
    )
    return (
        f'<VRTDataset rasterXSize="{spec.src.width}" rasterYSize="{spec.src.height}">'
        f"<SRS>{escape(spec.src.crs.to_wkt())}</SRS>"
        f"<GeoTransform>{_geotransform(spec.src.transform)}</GeoTransform>"
        f"{bands}{mask}</VRTDataset>"
    )


def warped_vrt_xml(
    spec: WarpSpec,
    source_path: str,
) -> str:
    """A ``VRTWarpedDataset`` on the whole destination grid, in blocks of ``spec.block``.

    The transformer is GDAL's ``ApproxTransformer`` with ``MaxError`` =
    ``spec.error_threshold`` (source pixels, as gdalwarp ``-et``) around the exact
    ``GenImgProjTransformer``, or the bare exact one when the threshold is 0.
    """
    gdal_type = GDAL_DATA_TYPES[spec.dtype]
    src_wkt, dst_wkt = escape(spec.src.crs.to_wkt()), escape(spec.dst.crs.to_wkt())
    dst_nd = (
        ""
        if spec.dst_nodata is None
        else f"<NoDataValue>{float_text(spec.dst_nodata)}</NoDataValue>"
    )
    bands = "".join(
        f'<VRTRasterBand dataType="{gdal_type}" band="{b}" subClass="VRTWarpedRasterBand">'
        f"{dst_nd}</VRTRasterBand>"
        for b in range(1, spec.count + 1)
    )
    mapping = ""
    if spec.src_nodata is not None:
        mapping += (
            f"<SrcNoDataReal>{float_text(spec.src_nodata)}</SrcNoDataReal>"
            "<SrcNoDataImag>0</SrcNoDataImag>"
        )
    if spec.dst_nodata is not None:
        mapping += (
            f"<DstNoDataReal>{float_text(spec.dst_nodata)}</DstNoDataReal>"
            "<DstNoDataImag>0</DstNoDataImag>"
        )
    band_list = "".join(
        f'<BandMapping src="{b}" dst="{b}">{mapping}</BandMapping>'
        for b in range(1, spec.count + 1)
    )
    options = "".join(f'<Option name="{k}">{v}</Option>' for k, v in warp_options(spec).items())
    aoi = ""
    if spec.aoi is not None:
        aoi = (
            '<Options><Option key="AREA_OF_INTEREST">'
            + ",".join(float_text(v) for v in spec.aoi)
            + "</Option></Options>"
        )
    transformer = (
        "<GenImgProjTransformer>"
        f"<SrcGeoTransform>{_geotransform(spec.src.transform)}</SrcGeoTransform>"
        f"<DstGeoTransform>{_geotransform(spec.dst.transform)}</DstGeoTransform>"
        "<ReprojectTransformer><ReprojectionTransformer>"
        f"<SourceSRS>{src_wkt}</SourceSRS><TargetSRS>{dst_wkt}</TargetSRS>{aoi}"
        "</ReprojectionTransformer></ReprojectTransformer>"
        "</GenImgProjTransformer>"
    )
    if spec.error_threshold > 0:
        # What GDAL 3.10 itself writes for gdalwarp -et / WarpedVRT(tolerance=...).
        transformer = (
            f"<ApproxTransformer><MaxError>{float_text(spec.error_threshold)}</MaxError>"
            f"<BaseTransformer>{transformer}</BaseTransformer></ApproxTransformer>"
        )
    block_h, block_w = spec.block
    return (
        f'<VRTDataset rasterXSize="{spec.dst.width}" rasterYSize="{spec.dst.height}" '
        f'subClass="VRTWarpedDataset"><SRS>{dst_wkt}</SRS>'
        f"<GeoTransform>{_geotransform(spec.dst.transform)}</GeoTransform>{bands}"
        f"<BlockXSize>{block_w}</BlockXSize><BlockYSize>{block_h}</BlockYSize>"
        f"<GDALWarpOptions><WarpMemoryLimit>{WARP_MEMORY_LIMIT}</WarpMemoryLimit>"
        f"<ResampleAlg>{METHODS[spec.resampling].gdal}</ResampleAlg>"
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
        The destination window to compute. GDAL warps every block of ``spec.block``'s grid it
        touches whole, so a window made of whole blocks wastes nothing.

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
        source_xml = source_vrt_xml(spec, raw.name, source_window)
        with MemoryFile(source_xml.encode(), ext=".vrt") as src_vrt:
            warped_xml = warped_vrt_xml(spec, src_vrt.name)
            with (
                MemoryFile(warped_xml.encode(), ext=".vrt") as warped,
                warped.open() as vrt,
                rasterio.Env(**BLOCK_BY_BLOCK),
            ):
                dh, dw = dst_window.shape
                out: np.ndarray = vrt.read(
                    window=RioWindow(dst_window.col0, dst_window.row0, dw, dh),
                )
    return out


def warp_array(spec: WarpSpec, source: np.ndarray) -> np.ndarray:
    """Warp the whole in-memory source array onto the whole destination grid.

    The reference every chunked result is checked against: `warp_window` with the whole
    source and the whole destination window. For an output at most
    `pipeline.warp.grid.WARP_WHOLE_ROW_WIDTH` wide this is GDAL's own whole-array warp
    (``rasterio.warp.reproject``) with the same options.
    """
    return warp_window(
        spec,
        source,
        Window(0, spec.src.height, 0, spec.src.width),
        Window(0, spec.dst.height, 0, spec.dst.width),
    )


def gdal_version() -> tuple[int, ...]:
    """The running GDAL's version as integers, e.g. ``(3, 10, 3)``."""
    return tuple(int(p) for p in rasterio.__gdal_version__.split(".")[:3] if p.isdigit())


def warn_if_chunk_dependent(resampling: str) -> None:
    """Warn that ``sum`` resampling depends on GDAL's chunking on GDAL < 3.12.1.

    GDAL's own sum kernel has chunk-dependent artifacts (OSGeo/gdal#13539, fixed by
    OSGeo/gdal#13541): two GDAL warps that differ only in GDAL's internal chunking disagree,
    so no chunking of ours can equal the whole-array warp either.
    """
    if resampling == "sum" and gdal_version() < GDAL_SUM_FIXED:
        warnings.warn(
            f"resampling='sum' on GDAL {rasterio.__gdal_version__} has chunk-dependent "
            "artifacts (OSGeo/gdal#13539, fixed in 3.12.1); the result may differ from a "
            "whole-array warp",
            PipelineWarning,
            stacklevel=3,
        )


__all__ = [
    "BLOCK_BY_BLOCK",
    "gdal_version",
    "source_vrt_xml",
    "warn_if_chunk_dependent",
    "warp_array",
    "warp_options",
    "warp_window",
    "warped_vrt_xml",
]
