"""Package defaults registered with ``dask.config`` under the ``pipeline`` key, and their schema.

Like ``distributed.yaml``: the defaults live in ``pipeline.yaml`` beside this module, are
registered once on import (nothing is written to the user's home), and can be overridden by
dask config files, ``DASK_PIPELINE__*`` environment variables or keyword arguments.
``pipeline-schema.yaml`` describes every key; `validate` checks a config overlay against it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import dask.config
import yaml

from pipeline.errors import ConfigError

_HERE = pathlib.Path(__file__).parent
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "mapping": (dict,),
    "list": (list,),
    "null": (type(None),),
}


#: libyaml's safe loader when PyYAML has it (~4x faster than the pure-Python one).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(name: str) -> dict[str, Any]:
    with open(_HERE / name, encoding="utf-8") as f:
        data: dict[str, Any] = yaml.load(f, Loader=_LOADER)
    return data


defaults = _load("pipeline.yaml")
dask.config.update_defaults(defaults)


def _schema() -> dict[str, Any]:
    """``pipeline-schema.yaml``, read on first use: only `validate` and the tests need it."""
    if "schema" not in globals():
        globals()["schema"] = _load("pipeline-schema.yaml")
    data: dict[str, Any] = globals()["schema"]
    return data


def __getattr__(name: str) -> Any:
    if name == "schema":
        return _schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get(key: str) -> Any:
    """Value of ``pipeline.<key>`` from dask config."""
    return dask.config.get(f"pipeline.{key}")


def _is_leaf(node: Mapping[str, Any]) -> bool:
    return "type" in node and isinstance(node["type"], str)


def _check_leaf(value: Any, spec: Mapping[str, Any], key: str, source: str) -> None:
    allowed = spec["type"].split("|")
    ok = any(
        isinstance(value, _TYPES[t])
        and not (t in ("integer", "number") and isinstance(value, bool))
        for t in allowed
    )
    if not ok:
        raise ConfigError(
            f"{source}: {key} must be {' or '.join(allowed)}, got {type(value).__name__} {value!r}"
        )
    if "choices" in spec and value not in spec["choices"]:
        raise ConfigError(f"{source}: {key} must be one of {spec['choices']!r}, got {value!r}")


def validate(data: Mapping[str, Any], source: str = "config") -> None:
    """Check the ``pipeline`` section of a config overlay against the schema.

    Raises `ConfigError` naming ``source`` and the dotted key of the first unknown key, wrong
    type or bad choice. Other sections (``distributed``, ``jobqueue``, ``kubernetes``) belong
    to their libraries and are passed through.
    """

    def walk(node: Any, spec: Mapping[str, Any], prefix: str) -> None:
        if not isinstance(node, Mapping):
            raise ConfigError(f"{source}: {prefix} must be a mapping, got {node!r}")
        for key, value in node.items():
            dotted = f"{prefix}.{key}"
            sub = spec.get(key)
            if sub is None:
                known = ", ".join(sorted(spec))
                raise ConfigError(f"{source}: unknown key {dotted!r} (known here: {known})")
            if _is_leaf(sub):
                _check_leaf(value, sub, dotted, source)
            else:
                walk(value, sub, dotted)

    if "pipeline" in data:
        walk(data["pipeline"], _schema()["pipeline"], "pipeline")
