"""Reports (batch and ``pipeline verify``): one writer, CSV or JSON lines, replaced atomically."""

from __future__ import annotations

import csv
import json
import os
import pathlib

import pytest
from click.testing import CliRunner

from pipeline.batch import BatchSummary, TileRecord
from pipeline.cli import cli as main
from pipeline.report import write_report


def test_batch_summary_report_in_both_formats(tmp_path) -> None:
    summary = BatchSummary(
        records=[
            TileRecord("a.tif", "out/a.tif", "done", seconds=1.5, attempts=1),
            TileRecord("b.tif", "out/b.tif", "failed", error="no CRS", attempts=1),
        ]
    )
    jsonl = summary.write_report(tmp_path / "r.jsonl")
    rows = [json.loads(line) for line in pathlib.Path(jsonl).read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done", "failed"] and rows[1]["error"] == "no CRS"
    with open(summary.write_report(tmp_path / "r.CSV"), encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(TileRecord.__dataclass_fields__)
    assert [r["input"] for r in table] == ["a.tif", "b.tif"] and table[0]["seconds"] == "1.5"
    assert sorted(os.listdir(tmp_path)) == ["r.CSV", "r.jsonl"]


def test_a_failed_report_leaves_the_previous_one_and_no_temporary(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("previous\n")
    with pytest.raises(TypeError):
        write_report(path, [{"ok": True}, {"bad": object()}])  # not JSON-serialisable
    assert path.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["r.jsonl"]


def test_csv_columns_default_to_the_first_row_and_no_rows_is_an_empty_file(tmp_path) -> None:
    write_report(tmp_path / "r.csv", [{"path": "x.tif", "ok": False}])
    assert (tmp_path / "r.csv").read_text().splitlines() == ["path,ok", "x.tif,False"]
    write_report(tmp_path / "empty.csv", [])
    assert (tmp_path / "empty.csv").read_text() == ""


def test_cli_verify_writes_its_csv_report_through_the_shared_writer(shared_data, tmp_path):
    report = tmp_path / "verify.csv"
    report.write_text("stale\n")
    res = CliRunner().invoke(
        main, ["verify", str(shared_data / "byte.tif"), "--report", str(report)],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with open(report, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["ok"] for r in rows] == ["True"] and rows[0]["path"].endswith("byte.tif")
    assert list(rows[0]) == ["path", "ok", "crs", "shape", "blocks", "cog", "problems",
                             "warnings"]  # fmt: skip
    assert os.listdir(tmp_path) == ["verify.csv"]
