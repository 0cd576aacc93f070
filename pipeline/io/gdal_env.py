"""GDAL/PROJ environment for workers (or this process): defaults from config, redaction.

The worker plugin that applies it on a cluster is `pipeline.worker_plugins.GDALEnvPlugin`;
this module imports without distributed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pipeline import config

_SECRET = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|SESSION|AUTH|(^|_)KEY($|_)", re.I)


def worker_env(overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment every worker gets: ``pipeline.gdal-env`` plus ``overrides``.

    Names are upper-cased: dask reads ``DASK_PIPELINE__GDAL_ENV__GDAL_HTTP_TIMEOUT=5`` as the
    key ``gdal_http_timeout``, which then replaces ``GDAL_HTTP_TIMEOUT``.
    """
    env = {str(k).upper(): str(v) for k, v in (config.get("gdal-env") or {}).items()}
    env.update({str(k).upper(): str(v) for k, v in (overrides or {}).items()})
    return env


def looks_secret(name: str) -> bool:
    """True for names such as ``AWS_SECRET_ACCESS_KEY`` or ``GS_TOKEN`` whose values we hide."""
    return bool(_SECRET.search(name))


def redact(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` safe to print: secret-looking values replaced by ``***``."""
    return {k: ("***" if looks_secret(k) else v) for k, v in env.items()}


def describe(env: Mapping[str, str]) -> str:
    """``K=V`` pairs for the terminal, secrets redacted."""
    return ", ".join(f"{k}={v}" for k, v in sorted(redact(env).items()))


def current_settings(names: list[str]) -> dict[str, str | None]:
    """What GDAL sees for ``names`` in this process (run inside a task to check a worker)."""
    from rasterio.env import getenv, hasenv

    out: dict[str, str | None] = {}
    active = getenv() if hasenv() else {}
    for name in names:
        out[name] = str(active[name]) if name in active else os.environ.get(name)
    return out
