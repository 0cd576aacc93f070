"""Batch planning, pure and up front: find inputs, name outputs, catch collisions.

Nothing here touches a cluster; `pipeline.batch` runs the plan.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyproj import CRS

from pipeline.errors import BatchUsageError

RASTER_SUFFIXES = (".tif", ".tiff", ".gtiff", ".vrt", ".img", ".jp2", ".nc")
DEFAULT_TEMPLATE = "{stem}_{crs}.tif"


@dataclass(frozen=True)
class TileJob:
    """One input and the output it becomes."""

    input: str
    output: str


def crs_code(crs: Any) -> str:
    """Short CRS label for file names: ``3857`` for EPSG:3857, ``ESRI54009``, else a hash."""
    crs = CRS.from_user_input(crs)
    auth = crs.to_authority(min_confidence=100)
    if auth:
        name, code = auth
        return code if name == "EPSG" else f"{name}{code}"
    return "crs" + hashlib.sha1(crs.to_wkt().encode()).hexdigest()[:8]


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def discover_inputs(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    pattern: str | None = None,
) -> tuple[list[str], str]:
    """Input files and the root folder that output sub-folders mirror.

    ``inputs`` is a directory (files matching ``pattern``, default raster suffixes; with
    ``recursive`` also in sub-folders), a glob, a text file listing one path per line (relative
    paths are relative to the list; blank lines and ``#`` comments are skipped), or a list of
    paths. Raises `BatchUsageError` when nothing matches.
    """
    if isinstance(inputs, (list, tuple)):
        files = [os.path.abspath(os.fspath(p)) for p in inputs]
        root = os.path.commonpath([os.path.dirname(f) for f in files]) if files else os.getcwd()
        source = "the given paths"
    else:
        text = os.fspath(inputs)  # type: ignore[arg-type]
        if os.path.isdir(text):
            root = os.path.abspath(text)
            pat = pattern or "*"
            found = glob.glob(
                os.path.join(root, "**", pat) if recursive else os.path.join(root, pat),
                recursive=recursive,
            )
            files = sorted(
                os.path.abspath(f)
                for f in found
                if os.path.isfile(f)
                and (pattern or f.lower().endswith(RASTER_SUFFIXES))
                and not os.path.basename(f).startswith(".")
            )
            source = f"folder {text!r}" + (f" matching {pattern!r}" if pattern else "")
        elif os.path.isfile(text) and not text.lower().endswith(RASTER_SUFFIXES):
            base = os.path.dirname(os.path.abspath(text))
            with open(text, encoding="utf-8") as f:
                lines = [ln.strip() for ln in f]
            files = [
                os.path.abspath(os.path.join(base, ln))
                for ln in lines
                if ln and not ln.startswith("#")
            ]
            root = os.path.commonpath([os.path.dirname(p) for p in files]) if files else base
            source = f"list file {text!r}"
        elif _is_glob(text):
            files = sorted(
                os.path.abspath(f) for f in glob.glob(text, recursive=True) if os.path.isfile(f)
            )
            root = os.path.commonpath([os.path.dirname(f) for f in files]) if files else os.getcwd()
            source = f"glob {text!r}"
        elif os.path.isfile(text):
            files, root, source = (
                [os.path.abspath(text)],
                os.path.dirname(os.path.abspath(text)),
                text,
            )
        else:
            raise BatchUsageError(f"{text}: no such file, folder or matching glob")
    if not files:
        raise BatchUsageError(f"no input rasters found in {source}")
    return files, root


def plan_outputs(
    files: Sequence[str],
    root: str,
    outdir: str | os.PathLike[str],
    crs: Any,
    *,
    name_template: str | None = None,
) -> list[TileJob]:
    """Output path for each input, mirroring sub-folders of ``root`` under ``outdir``.

    ``name_template`` may use ``{stem}``, ``{name}``, ``{crs}`` and ``{suffix}`` (default
    ``{stem}_{crs}.tif``). Two inputs mapping to one output, or an output that is an input,
    raise `BatchUsageError` before any work starts.
    """
    template = name_template or DEFAULT_TEMPLATE
    code = crs_code(crs)
    out_root = os.path.abspath(os.fspath(outdir))
    jobs: list[TileJob] = []
    seen: dict[str, str] = {}
    inputs = set(files)
    for f in files:
        rel_dir = os.path.relpath(os.path.dirname(f), root)
        name = os.path.basename(f)
        stem, suffix = os.path.splitext(name)
        try:
            out_name = template.format(stem=stem, name=name, crs=code, suffix=suffix)
        except (KeyError, IndexError, ValueError) as err:
            raise BatchUsageError(
                f"name template {template!r} is invalid ({err}); use {{stem}}, {{name}}, "
                "{crs}, {suffix}"
            ) from err
        out = os.path.normpath(os.path.join(out_root, rel_dir, out_name))
        if out in seen:
            raise BatchUsageError(
                f"{f} and {seen[out]} would both be written to {out}; "
                "use --name-template with {name} or separate runs"
            )
        if out in inputs:
            raise BatchUsageError(f"{f}: its output {out} is an input; choose another folder")
        seen[out] = f
        jobs.append(TileJob(f, out))
    return jobs
