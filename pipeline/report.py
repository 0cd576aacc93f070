"""Reports with one row per file (batch tiles, ``pipeline verify``), written atomically.

The format follows the file name: CSV for ``.csv``, JSON lines otherwise. The rows go to a
temporary file in the report's folder that replaces the report only once complete, so a
reader never sees half a report and an interrupted run leaves the previous one in place.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.io.staged import temp_path_for


def write_report(
    path: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    fieldnames: Sequence[str] | None = None,
) -> str:
    """Write ``rows`` to ``path`` atomically: CSV for ``.csv``, JSON lines otherwise.

    Parameters
    ----------
    path : str or os.PathLike
        The report file; replaced if it exists. Its folder must exist.
    rows : sequence of mappings
        One row per item; values JSON-serialisable (CSV writes their ``str``).
    fieldnames : sequence of str, optional
        CSV columns, in order (default: the first row's keys). A CSV report of no rows and
        no ``fieldnames`` is an empty file.

    Returns
    -------
    str
        ``path`` as a string.
    """
    p = os.fspath(path)
    tmp = temp_path_for(p)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if p.lower().endswith(".csv"):
                columns = (
                    list(fieldnames) if fieldnames is not None else list(rows[0] if rows else ())
                )
                if columns:
                    writer = csv.DictWriter(f, fieldnames=columns)
                    writer.writeheader()
                    writer.writerows(rows)
            else:
                f.writelines(json.dumps(dict(row)) + "\n" for row in rows)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p
