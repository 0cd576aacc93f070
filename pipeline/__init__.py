"""raster-pipeline: a Dask-based, scalable geospatial raster pipeline.

Layering (lower layers never import higher ones; nothing imports ``cli``)::

    errors, config, grid (pure maths)
      -> io.open (block-aligned lazy read)
      -> kernels, apply (lazy compute)
      -> io.write (locked, atomic write)
      -> cluster (where it runs), demo
      -> cli (click front end)
"""

from __future__ import annotations

from pipeline import config as _config  # noqa: F401  (registers dask-config defaults)
from pipeline._version import __version__
from pipeline.apply import apply_kernel
from pipeline.cluster import connect
from pipeline.errors import (
    ChunkingError,
    ClusterError,
    KernelError,
    OutputError,
    OutputExistsError,
    PipelineError,
    PipelineWarning,
    RasterInputError,
)
from pipeline.io.open import open_raster
from pipeline.io.write import write_raster
from pipeline.kernels import KernelSpec, list_kernels, register_kernel

__all__ = [
    "ChunkingError",
    "ClusterError",
    "KernelError",
    "KernelSpec",
    "OutputError",
    "OutputExistsError",
    "PipelineError",
    "PipelineWarning",
    "RasterInputError",
    "__version__",
    "apply_kernel",
    "connect",
    "list_kernels",
    "open_raster",
    "register_kernel",
    "write_raster",
]
