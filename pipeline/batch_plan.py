"""Batch planning, pure and up front: find inputs, name outputs, catch collisions.

Nothing here touches a cluster; `pipeline.batch` runs the plan. Inputs are local paths (made
absolute) or GDAL paths and URLs (``/vsicurl/...``, ``https://...``, ``s3://...``), kept as
given: those cannot be stat'ed, so planning never requires a listed input to exist; a missing or
unreadable one fails alone when its tile runs. An ``s3://bucket/prefix/`` is listed (with
boto3, `pipeline.io.cloud.list_objects`) like a folder.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import posixpath
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyproj import CRS

from pipeline.errors import BatchUsageError
from pipeline.io.staged import TEMP_SUFFIX

RASTER_SUFFIXES = (".tif", ".tiff", ".gtiff", ".vrt", ".img", ".jp2", ".nc")
#: Never inputs, whatever the pattern: our temporary files and GDAL's sidecars.
SKIPPED_SUFFIXES = (TEMP_SUFFIX, ".aux.xml", ".ovr", ".msk")
DEFAULT_TEMPLATE = "{stem}_{crs}.tif"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Inputs:
    """What `discover` found.

    Attributes
    ----------
    files : list of str
        Local paths made absolute, URLs as written; in the order given, without repeats.
    root : str
        The folder all local inputs' folders share (the working folder if there are none).
    url_roots : tuple of str
        Listed URL prefixes (``s3://bucket/prefix/``): their objects' outputs mirror the
        key's path below the prefix, as files below a folder do.
    """

    files: list[str]
    root: str
    url_roots: tuple[str, ...] = ()


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


def is_url(path: str) -> bool:
    """True for GDAL virtual paths (``/vsicurl/...``, ``/vsis3/...``) and URLs (``s3://``)."""
    return path.startswith("/vsi") or _SCHEME.match(path) is not None


def url_name(url: str) -> str:
    """The last path component of a URL or GDAL path, without query or fragment."""
    rest = url
    while rest.startswith("/vsi"):  # /vsicurl/https://host/a.tif, /vsizip//vsicurl/...
        head, _, tail = rest[1:].partition("/")
        if not tail or not head.startswith("vsi"):
            break
        rest = tail
    path = urlsplit(rest).path if _SCHEME.match(rest) else rest
    return posixpath.basename(path.rstrip("/"))


def is_s3_prefix(url: str) -> bool:
    """True for ``s3://bucket``, ``s3://bucket/prefix/`` and ``s3://bucket/prefix`` (a name
    without a raster suffix): listed as a folder. ``s3://bucket/a.tif`` is one object."""
    if not url.startswith("s3://"):
        return False
    key = url[len("s3://") :].partition("/")[2]
    return not key or key.endswith("/") or not key.lower().endswith(RASTER_SUFFIXES)


def s3_root(url: str) -> str:
    """The prefix a listing's outputs mirror below: ``url`` ending in ``/``."""
    return url if url.endswith("/") else url + "/"


def list_s3_rasters(url: str, *, pattern: str | None = None) -> list[str]:
    """Objects under an S3 prefix whose names match ``pattern`` (default: raster suffixes).

    Recursive, as S3 prefixes are. Raises `BatchUsageError` when nothing matches or the
    bucket cannot be listed (one line naming the URL; credentials never shown).
    """
    from pipeline.errors import RasterInputError
    from pipeline.io.cloud import list_objects

    root = s3_root(url)
    try:
        objects = list(list_objects(root))
    except RasterInputError as err:
        raise BatchUsageError(str(err)) from err
    found = []
    for obj in objects:
        name = posixpath.basename(obj)
        wanted = (
            fnmatch.fnmatch(name, pattern) if pattern else name.lower().endswith(RASTER_SUFFIXES)
        )
        if wanted and not name.startswith(".") and not _skipped(name):
            found.append(obj)
    if not found:
        matching = f" matching {pattern!r}" if pattern else ""
        raise BatchUsageError(f"no input rasters found under {root}{matching}")
    return found


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _skipped(name: str) -> bool:
    return name.lower().endswith(SKIPPED_SUFFIXES)


def find_rasters(
    folder: str | os.PathLike[str], *, recursive: bool = False, pattern: str | None = None
) -> list[str]:
    """Raster files in ``folder``, absolute and sorted (possibly none).

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to list.
    recursive : bool, default False
        Also list every sub-folder.
    pattern : str, optional
        File-name glob (default: names ending in one of `RASTER_SUFFIXES`). Hidden files, our
        temporary files and GDAL sidecars (``.aux.xml``, ``.ovr``, ``.msk``) are never listed.

    Returns
    -------
    list of str
        The files found; the caller decides what an empty folder means.
    """
    root = os.path.abspath(os.fspath(folder))
    pat = pattern or "*"
    found = glob.glob(
        os.path.join(root, "**", pat) if recursive else os.path.join(root, pat),
        recursive=recursive,
    )
    return sorted(
        os.path.abspath(f)
        for f in found
        if os.path.isfile(f)
        and (pattern or f.lower().endswith(RASTER_SUFFIXES))
        and not os.path.basename(f).startswith(".")
        and not _skipped(f)
    )


def _glob_root(pattern: str) -> str:
    """The folder before the first wildcard: sub-folders of matches below it are mirrored."""
    parts = os.path.abspath(pattern).split(os.sep)
    first = next(i for i, part in enumerate(parts) if _is_glob(part))
    return os.sep.join(parts[:first]) or os.sep


def read_list(source: str | os.PathLike[str]) -> tuple[list[str], str | None]:
    """Inputs listed in a text file, one path or URL per line, and the folder they share.

    ``source`` ``"-"`` reads standard input. Blank lines and ``#`` comments are skipped;
    relative paths are relative to the list file (to the working folder for standard input);
    URLs and GDAL paths are kept as written. Listed inputs are not checked: a missing or bad
    one fails alone when its tile runs. Raises `BatchUsageError` for a missing or unreadable
    list and for a list naming nothing.
    """
    text = os.fspath(source)
    if text == "-":
        base, label, lines = os.getcwd(), "standard input", sys.stdin.read().splitlines()
    else:
        base, label = os.path.dirname(os.path.abspath(text)), text
        try:
            with open(text, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError as err:
            raise BatchUsageError(f"{text}: no such list file") from err
        except IsADirectoryError as err:
            raise BatchUsageError(
                f"{text}: is a folder, not a list file; give it as INPUTS instead"
            ) from err
        except UnicodeDecodeError as err:
            raise BatchUsageError(
                f"{text}: not a text list file (expected one path or URL per line)"
            ) from err
        except OSError as err:
            raise BatchUsageError(f"{text}: cannot read the list file ({err.strerror})") from err
    entries = [ln.strip() for ln in lines]
    files = [
        e if is_url(e) else os.path.abspath(os.path.join(base, os.path.expanduser(e)))
        for e in entries
        if e and not e.startswith("#")
    ]
    if not files:
        raise BatchUsageError(f"{label}: the list names no inputs (only blank lines or comments)")
    local = [os.path.dirname(f) for f in files if not is_url(f)]
    return files, (os.path.commonpath(local) if local else None)


def _expand(
    text: str, *, recursive: bool, pattern: str | None, strict: bool
) -> tuple[list[str], str | None]:
    """The inputs one INPUTS item names and the folder their outputs mirror (None for URLs).

    ``strict`` (a single item, as always before several were accepted): an existing file that
    is not a raster is a list file and a missing path is an error; otherwise plain paths are
    taken as they are and fail alone at run time if they are bad.
    """
    if is_s3_prefix(text):
        return list_s3_rasters(text, pattern=pattern), s3_root(text)
    if is_url(text):
        return [text], None
    if os.path.isdir(text):
        files = find_rasters(text, recursive=recursive, pattern=pattern)
        if not files:
            where = f"folder {text!r}" + (f" matching {pattern!r}" if pattern else "")
            hint = "" if recursive or pattern else " (add --recursive for sub-folders)"
            raise BatchUsageError(f"no input rasters found in {where}{hint}")
        return files, os.path.abspath(text)
    if os.path.isfile(text):
        if strict and not text.lower().endswith(RASTER_SUFFIXES):
            return read_list(text)
        path = os.path.abspath(text)
        return [path], os.path.dirname(path)
    if _is_glob(text):
        files = sorted(
            os.path.abspath(f)
            for f in glob.glob(text, recursive=True)
            if os.path.isfile(f) and not _skipped(f)
        )
        if not files:
            raise BatchUsageError(f"glob {text!r} matches no files")
        return files, _glob_root(text)
    if strict:
        raise BatchUsageError(f"{text}: no such file, folder or matching glob")
    path = os.path.abspath(text)
    return [path], os.path.dirname(path)


def discover(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    recursive: bool = False,
    pattern: str | None = None,
    from_list: str | os.PathLike[str] | None = None,
) -> Inputs:
    """Input files and URLs, and the root folder (and URL prefixes) output sub-folders mirror.

    Parameters
    ----------
    inputs : str, os.PathLike or sequence of them, optional
        A folder (files matching ``pattern``, default raster suffixes; with ``recursive`` also
        in sub-folders), an ``s3://bucket/prefix/`` (objects matching ``pattern`` at any
        depth; needs boto3, ``raster-pipeline[s3]``), a glob (``**`` descends into
        sub-folders), a text file listing inputs (as ``from_list``), a path, a URL, or a
        sequence of folders, globs, paths and URLs.
        In a sequence a path is not checked (a missing or bad one fails alone at run time).
    recursive : bool, default False
        Descend into sub-folders of folders.
    pattern : str, optional
        File-name glob inside folders.
    from_list : str or os.PathLike, optional
        A text file with one path or GDAL-readable URL per line (``"-"``: standard input);
        see `read_list`. Added to ``inputs``.

    Returns
    -------
    Inputs

    Raises
    ------
    BatchUsageError
        No inputs given, a folder or S3 prefix with no rasters, an S3 bucket that cannot be
        listed, a glob matching nothing, a missing single path, a missing, unreadable or empty
        list file.
    """
    if inputs is None and from_list is None:
        raise BatchUsageError("no inputs: give folders, globs or paths, or a list file")
    found: list[tuple[list[str], str | None]] = []
    if isinstance(inputs, (list, tuple)):
        for item in inputs:
            text = os.fspath(item)
            found.append(_expand(text, recursive=recursive, pattern=pattern, strict=False))
    elif inputs is not None:
        text = os.fspath(inputs)  # type: ignore[arg-type]
        found.append(_expand(text, recursive=recursive, pattern=pattern, strict=True))
    if from_list is not None:
        found.append(read_list(from_list))
    files = list(dict.fromkeys(f for group, _ in found for f in group))
    if not files:
        raise BatchUsageError("no input rasters found in the given paths")
    roots = [r for _, r in found if r is not None and not is_url(r)]
    url_roots = tuple(dict.fromkeys(r for _, r in found if r is not None and is_url(r)))
    return Inputs(files, os.path.commonpath(roots) if roots else os.getcwd(), url_roots)


def discover_inputs(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    recursive: bool = False,
    pattern: str | None = None,
    from_list: str | os.PathLike[str] | None = None,
) -> tuple[list[str], str]:
    """`discover`'s files and root folder (for callers that need no URL prefixes)."""
    found = discover(inputs, recursive=recursive, pattern=pattern, from_list=from_list)
    return found.files, found.root


def _url_rel_dir(url: str, url_roots: Sequence[str]) -> str:
    """The folder below ``outdir`` for an object listed under one of ``url_roots``."""
    root = max((r for r in url_roots if url.startswith(r)), key=len, default=None)
    if root is None:
        return ""
    parts = [p for p in posixpath.dirname(url[len(root) :]).split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BatchUsageError(f"{url}: a key with '..' cannot name an output folder")
    return os.path.join(*parts) if parts else ""


def plan_outputs(
    files: Sequence[str],
    root: str,
    outdir: str | os.PathLike[str],
    crs: Any,
    *,
    name_template: str | None = None,
    url_roots: Sequence[str] = (),
) -> list[TileJob]:
    """Output path for each input, mirroring sub-folders of ``root`` under ``outdir``.

    A URL below one of ``url_roots`` (listed S3 prefixes) mirrors its key's path below that
    prefix; any other URL's output is named after its last path component, directly in
    ``outdir``.

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
        if is_url(f):  # no folder to mirror: named after the URL's last path component
            rel_dir, name = _url_rel_dir(f, url_roots), url_name(f)
            if not name:
                raise BatchUsageError(f"{f}: the URL has no file name to name its output after")
        else:
            rel_dir, name = os.path.relpath(os.path.dirname(f), root), os.path.basename(f)
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
