"""raster-pipeline: a Dask-based, scalable geospatial raster pipeline.

Layering (lower layers never import higher ones; nothing imports ``cli``)::

    errors, config, chunking (pure chunk maths)
      -> io.gdal_env, io.cloud, io.vsi (GDAL settings, S3 endpoints and credentials, remote
         retries) -> io.files, io.metadata (file access without dask), io.open (block-aligned
         lazy read)
      -> kernels, apply (lazy compute)
      -> warp (package: resampling, grid, spec, overviews, engine, tile, graph, reproject)
      -> io.staged, io.cog, io.write (staged atomic output; locked to_raster -- io.write calls
         preflight's checks when a cluster runs it, the one call upwards)
      -> verify, report, batch_plan, manifest, batch (thousands of tiles; resume by manifest)
      -> cluster, preflight, worker_plugins (where it runs: in this process, a LocalCluster,
         a remote scheduler), demo
      -> cli (click front end)

The public names below are imported on first use (PEP 562), so ``pipeline --help`` does not pay
for importing xarray, numba and distributed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline._version import __version__
from pipeline.errors import (
    ChunkingError,
    ClusterError,
    ConfigError,
    CRSInputError,
    KernelError,
    OutputError,
    OutputExistsError,
    PipelineError,
    PipelineWarning,
    RasterInputError,
    ReprojectError,
)

if TYPE_CHECKING:
    from pipeline.apply import apply_kernel
    from pipeline.batch import BatchSummary, run_batch
    from pipeline.cluster import connect
    from pipeline.demo import sample_raster
    from pipeline.io.open import open_raster
    from pipeline.io.write import write_raster
    from pipeline.kernels import KernelSpec, get_kernel, list_kernels, register_kernel
    from pipeline.verify import VerifyResult, verify_raster
    from pipeline.warp.reproject import reproject

_LAZY = {
    "apply_kernel": "pipeline.apply",
    "connect": "pipeline.cluster",
    "open_raster": "pipeline.io.open",
    "write_raster": "pipeline.io.write",
    "sample_raster": "pipeline.demo",
    "reproject": "pipeline.warp.reproject",
    "run_batch": "pipeline.batch",
    "BatchSummary": "pipeline.batch",
    "verify_raster": "pipeline.verify",
    "VerifyResult": "pipeline.verify",
    "KernelSpec": "pipeline.kernels",
    "list_kernels": "pipeline.kernels",
    "get_kernel": "pipeline.kernels",
    "register_kernel": "pipeline.kernels",
}

__all__ = [
    "BatchSummary",
    "CRSInputError",
    "ChunkingError",
    "ClusterError",
    "ConfigError",
    "KernelError",
    "KernelSpec",
    "OutputError",
    "OutputExistsError",
    "PipelineError",
    "PipelineWarning",
    "RasterInputError",
    "ReprojectError",
    "VerifyResult",
    "__version__",
    "apply_kernel",
    "connect",
    "get_kernel",
    "list_kernels",
    "open_raster",
    "register_kernel",
    "reproject",
    "run_batch",
    "sample_raster",
    "verify_raster",
    "write_raster",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
