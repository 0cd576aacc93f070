"""The batch manifest: what was recorded when each output was published, so a rerun trusts it.

One JSON line per published (verified) output in ``OUTDIR/.pipeline-manifest.jsonl``: the
output path relative to OUTDIR, its size, ``mtime_ns``, a blake2b checksum of its bytes (read,
not decoded), the input and the options token. Only the client appends to it, so many tasks
never write it at once; a line cut short by a crash is ignored, and the last line for an
output wins. A rerun trusts an output whose size, mtime and options token match its record
without opening it (`Trust.MANIFEST`), or after re-reading its bytes (`Trust.CHECKSUM`);
`Trust.DECODE` ignores the manifest and decodes every block, as `pipeline.verify_raster` does.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

#: The manifest's file name in the output folder.
MANIFEST_NAME = ".pipeline-manifest.jsonl"
_VERSION = 1


class Trust(enum.Enum):
    """How a rerun decides that an existing output is done."""

    MANIFEST = "manifest"  # size + mtime_ns + options token match the record: no read
    CHECKSUM = "checksum"  # and the checksum of the bytes matches (read, not decoded)
    DECODE = "decode"  # ignore the manifest: decode every block (`verify_raster`)


def manifest_path(outdir: str | os.PathLike[str]) -> str:
    """The manifest of ``outdir``."""
    return os.path.join(os.fspath(outdir), MANIFEST_NAME)


def options_token(options: Mapping[str, Any]) -> str:
    """A stable token of the options that shape an output's pixels and format."""
    text = json.dumps(options, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def checksum(path: str | os.PathLike[str]) -> str:
    """blake2b (128 bits) of the file's bytes: about 1 ms for a 760 KB deflate tile."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: str | os.PathLike[str]) -> tuple[int, int, str]:
    """``(size, mtime_ns, checksum)`` of a file that was just verified."""
    before = os.stat(path)
    digest = checksum(path)
    return before.st_size, before.st_mtime_ns, digest


def read_manifest(outdir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The records of ``outdir``'s manifest by relative output path (last one wins).

    A missing manifest is empty; lines that do not parse (cut short by a crash) are ignored.
    """
    records: dict[str, dict[str, Any]] = {}
    path = manifest_path(outdir)
    if not os.path.exists(path):
        return records
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("v") == _VERSION and "path" in rec:
                records[str(rec["path"])] = rec
    return records


def is_trusted(
    record: Mapping[str, Any] | None,
    output: str,
    *,
    input: str,
    token: str,
    trust: Trust,
) -> bool:
    """Whether ``output`` is done by its manifest ``record`` at level ``trust``.

    Compares size, ``mtime_ns``, input and options token with one ``stat`` (and, for
    `Trust.CHECKSUM`, the checksum of the bytes); never opens the raster.
    """
    if record is None or trust is Trust.DECODE:
        return False
    if record.get("token") != token or record.get("input") != input:
        return False
    try:
        st = os.stat(output)
    except OSError:
        return False
    if st.st_size != record.get("size") or st.st_mtime_ns != record.get("mtime_ns"):
        return False
    if trust is Trust.CHECKSUM:
        try:
            return checksum(output) == record.get("checksum")
        except OSError:
            return False
    return True


class ManifestWriter:
    """Append records to a manifest (client side only): write, flush and fsync per batch.

    Records are buffered and written at most every ``every`` seconds or ``batch`` records, and
    on `close`; a crash loses at most the buffer, whose outputs a rerun then decodes.
    """

    def __init__(self, outdir: str | os.PathLike[str], *, batch: int = 64, every: float = 1.0):
        self.outdir = os.fspath(outdir)
        self.batch, self.every = batch, every
        self.pending: list[dict[str, Any]] = []
        self.last = time.monotonic()
        self._fh: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self._fh is None:
            path = manifest_path(self.outdir)
            torn = False
            with contextlib.suppress(OSError), open(path, "rb") as raw:
                raw.seek(-1, os.SEEK_END)
                torn = raw.read(1) != b"\n"  # a line cut short by a crash
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close)
            if torn:  # end it, so that it does not swallow the next record
                self._fh.write("\n")
        return self._fh

    def add(self, record: Mapping[str, Any]) -> None:
        """Buffer one record; write the buffer when it is full or old enough."""
        self.pending.append({"v": _VERSION, **record})
        if len(self.pending) >= self.batch or time.monotonic() - self.last >= self.every:
            self.flush()

    def extend(self, records: Iterable[Mapping[str, Any]]) -> None:
        """`add` each of ``records``."""
        for record in records:
            self.add(record)

    def flush(self) -> None:
        """Append the buffered records, then flush and fsync."""
        self.last = time.monotonic()
        if not self.pending:
            return
        fh = self._open()
        fh.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in self.pending))
        fh.flush()
        os.fsync(fh.fileno())
        self.pending.clear()

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "MANIFEST_NAME",
    "ManifestWriter",
    "Trust",
    "checksum",
    "fingerprint",
    "is_trusted",
    "manifest_path",
    "options_token",
    "read_manifest",
]
