"""Package defaults registered with ``dask.config`` under the ``pipeline`` key.

Like ``distributed.yaml``: the defaults live in ``pipeline.yaml`` beside this module, are
registered once on import (nothing is written to the user's home), and can be overridden by
dask config files, ``DASK_PIPELINE__*`` environment variables or keyword arguments.
"""

from __future__ import annotations

import pathlib
from typing import Any

import dask.config
import yaml

_DEFAULTS_PATH = pathlib.Path(__file__).with_name("pipeline.yaml")


def _load_defaults() -> dict[str, Any]:
    with open(_DEFAULTS_PATH, encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


defaults = _load_defaults()
dask.config.update_defaults(defaults)


def get(key: str) -> Any:
    """Value of ``pipeline.<key>`` from dask config."""
    return dask.config.get(f"pipeline.{key}")
