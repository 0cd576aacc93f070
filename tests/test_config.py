"""Package config defaults, their schema, and validation of overlays."""

from __future__ import annotations

from typing import Any

import dask
import pytest

from pipeline import config
from pipeline.errors import ConfigError


def _leaves(node: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and not ("type" in value and isinstance(value["type"], str)):
            out |= _leaves(value, dotted)
        else:
            out.add(dotted)
    return out


def test_every_default_is_described_by_the_schema_and_validates() -> None:
    schema_keys = _leaves(config.schema)
    default_keys = _leaves(config.defaults)
    # gdal-env is a free mapping in the schema: its entries are its children in the defaults
    default_keys = {k for k in default_keys if not k.startswith("pipeline.gdal-env.")}
    default_keys.add("pipeline.gdal-env")
    assert default_keys <= schema_keys, default_keys - schema_keys
    config.validate(config.defaults, "pipeline.yaml")


def test_defaults_are_registered_with_dask_config() -> None:
    assert (
        dask.config.get("pipeline.write.max-block")
        == config.defaults["pipeline"]["write"]["max-block"]
    )
    with dask.config.set({"pipeline.write.max-block": 256}):
        assert config.get("write.max-block") == 256


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"pipeline": {"clustr": {}}}, "unknown key 'pipeline.clustr'"),
        ({"pipeline": {"cluster": {"kind": "moon"}}}, "pipeline.cluster.kind must be one of"),
        ({"pipeline": {"cluster": {"local": {"processes": "yes"}}}}, "must be boolean"),
        ({"pipeline": {"open": {"min-chunks": True}}}, "must be integer"),
    ],
)
def test_bad_overlays_name_the_file_and_the_key(overlay, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        config.validate(overlay, "my.yaml")
    assert str(info.value).startswith("my.yaml: ")
