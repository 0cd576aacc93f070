"""The demo job: the seed kernel over a generated sample raster on a LocalCluster."""

from __future__ import annotations

import os
import pathlib
import time
from dataclasses import dataclass

import numpy as np
import rasterio

from pipeline.apply import apply_kernel
from pipeline.io.open import open_raster
from pipeline.io.write import write_raster
from pipeline.testing import write_synthetic_raster


@dataclass(frozen=True)
class DemoResult:
    """What the demo did, for printing."""

    input: str
    output: str
    seconds: float
    megapixels: float
    verified: bool

    @property
    def megapixels_per_second(self) -> float:
        """Throughput over the whole open -> kernel -> write run."""
        return self.megapixels / self.seconds if self.seconds else float("inf")


def default_workdir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/raster-pipeline/demo`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "raster-pipeline" / "demo"


def sample_raster(
    workdir: str | os.PathLike[str], *, size: int = 2048, bands: int = 3, block: int = 512
) -> str:
    """Create (once) a deterministic sample GeoTIFF and return its path.

    UTM zone 18N, 30 m pixels, uint8 landscape-like values, ``block``-pixel tiles, deflate;
    named ``sample_<size>x<size>x<bands>.tif`` (plus ``_b<block>`` for non-default tiles) in
    ``workdir``. Written atomically, so concurrent callers never see a partial file.
    """
    folder = pathlib.Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "" if block == 512 else f"_b{block}"
    path = folder / f"sample_{size}x{size}x{bands}{suffix}.tif"
    if not path.exists():
        tmp = folder / f".{path.name}.{os.getpid()}.pipeline-tmp"
        write_synthetic_raster(tmp, bands=bands, height=size, width=size, block=block)
        os.replace(tmp, path)
    return str(path)


def run_demo(
    workdir: str | os.PathLike[str] | None = None,
    *,
    size: int = 2048,
    bands: int = 3,
    progress: bool = True,
) -> DemoResult:
    """Run ``reverse-bands`` over the sample raster with the active scheduler and check it.

    The output is compared with the input's reversed bands, read independently with rasterio.
    """
    folder = pathlib.Path(workdir) if workdir is not None else default_workdir()
    src = sample_raster(folder, size=size, bands=bands)
    dst = str(folder / f"sample_{size}x{size}x{bands}_reverse-bands.tif")
    start = time.perf_counter()
    result = apply_kernel(open_raster(src), "reverse-bands")
    write_raster(result, dst, overwrite=True, progress=progress)
    seconds = time.perf_counter() - start
    with rasterio.open(src) as a, rasterio.open(dst) as b:
        verified = bool(np.array_equal(a.read()[::-1], b.read()))
    return DemoResult(src, dst, seconds, size * size / 1e6, verified)
