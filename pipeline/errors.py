"""Exceptions and warnings raised by raster-pipeline; the only place they are defined.

Each error mixes in the builtin it specialises (as rasterio does), so ``except ValueError``
or ``except FileExistsError`` keeps working for callers that do not know our types.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error raised on purpose by raster-pipeline."""


class RasterInputError(PipelineError, ValueError):
    """An input raster is missing, unreadable, corrupt or unsuitable."""


class ChunkingError(PipelineError, ValueError):
    """Requested chunks cannot be honoured."""


class KernelError(PipelineError, ValueError):
    """Unknown kernel, bad kernel parameters, or a kernel that cannot run on this input."""


class OutputError(PipelineError, OSError):
    """The output cannot be written (exists, folder missing or not writable)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and ``overwrite`` was not requested."""


class ClusterError(PipelineError, RuntimeError):
    """The Dask cluster cannot be started or reached."""


class PipelineWarning(UserWarning):
    """Warnings emitted by raster-pipeline (turned into errors by its own test-suite)."""


class ConfigError(PipelineError, ValueError):
    """A configuration file or value is invalid (the message names the file and the key)."""


class CRSInputError(PipelineError, ValueError):
    """A coordinate reference system is missing, invalid or ambiguous (says what is accepted)."""


class ReprojectError(PipelineError, ValueError):
    """Reprojection options that cannot be honoured (resampling, grid, nodata, dtype)."""


class BatchUsageError(PipelineError, ValueError):
    """A batch cannot start: no inputs, colliding outputs, bad template or folder (exit 2)."""
