"""Batch resume: a rerun trusts published outputs by their manifest record, without decoding."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import rasterio

import pipeline
import pipeline.batch
from pipeline.batch import BatchSummary, run_batch
from pipeline.manifest import MANIFEST_NAME, ManifestWriter, read_manifest
from tests.conftest import good_tiles
from tests.test_cli import invoke

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    # threads, not processes: the counting wrapper below sees the workers' calls
    with pipeline.connect(threads_per_worker=2, dashboard_address="127.0.0.1:0", quiet=True) as c:
        yield c


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The outputs that batch decoded with `verify_raster` (appended as they are)."""
    calls: list[str] = []
    real = pipeline.batch.verify_raster

    def counting(path: Any, **kw: Any) -> Any:
        calls.append(os.fspath(path))
        return real(path, **kw)

    monkeypatch.setattr(pipeline.batch, "verify_raster", counting)
    return calls


def _run(folder: pathlib.Path, client: object, **kw: Any) -> BatchSummary:
    kw.setdefault("resampling", "bilinear")
    return run_batch(folder / "in", folder / "out", "EPSG:3857", client=client, **kw)


def _published(folder: pathlib.Path, client: object, n: int = 4) -> list[pathlib.Path]:
    """Run a first batch of ``n`` tiles; return the outputs it published."""
    good_tiles(folder / "in", n=n)
    first = _run(folder, client)
    assert (first.done, first.skipped, first.failed) == (n, 0, 0)
    outputs = sorted((folder / "out").glob("*.tif"))
    assert len(outputs) == n
    return outputs


def test_first_run_records_every_published_output(client, tmp_path) -> None:
    outputs = _published(tmp_path, client)
    records = read_manifest(tmp_path / "out")
    assert set(records) == {p.name for p in outputs}
    for p in outputs:
        rec = records[p.name]
        st = p.stat()
        assert (rec["size"], rec["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
        assert rec["input"] == str(tmp_path / "in" / p.name.replace("_3857", ""))
        assert len(rec["checksum"]) == 32 and rec["token"]


def test_rerun_skips_without_decoding(client, tmp_path, decoded, monkeypatch) -> None:
    outputs = _published(tmp_path, client)
    decoded.clear()
    opened: list[str] = []
    real = rasterio.open

    def counting_open(path: Any, *a: Any, **kw: Any) -> Any:
        opened.append(os.fspath(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(rasterio, "open", counting_open)
    second = _run(tmp_path, client)
    assert (second.done, second.skipped, second.failed) == (0, len(outputs), 0)
    assert decoded == []
    assert not [p for p in opened if p.endswith("_3857.tif")]
    # nothing new to record: the manifest did not grow
    lines = (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines()
    assert len(lines) == len(outputs)


def test_modified_output_is_reverified_and_broken_one_redone(client, tmp_path, decoded) -> None:
    outputs = _published(tmp_path, client)
    touched, broken = outputs[0], outputs[1]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # mtime only
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # truncated: size differs, blocks missing
    decoded.clear()
    second = _run(tmp_path, client)
    assert sorted(decoded) == sorted(map(str, (touched, broken)))
    status = {pathlib.Path(r.output).name: r.status for r in second.records}
    assert status[touched.name] == "skipped" and status[broken.name] == "done"
    assert list(status.values()).count("skipped") == len(outputs) - 1
    # both were verified in this run: a third run trusts them again without decoding
    decoded.clear()
    third = _run(tmp_path, client)
    assert third.skipped == len(outputs) and decoded == []


def test_verify_existing_rereads_the_checksum(client, tmp_path, decoded) -> None:
    outputs = _published(tmp_path, client)
    target = outputs[0]
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # same size, restored mtime: only the checksum can tell
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    decoded.clear()
    trusting = _run(tmp_path, client)
    assert trusting.skipped == len(outputs) and decoded == []
    checking = _run(tmp_path, client, trust="checksum")
    assert checking.failed == 0 and decoded == [str(target)]


def test_reverify_decodes_every_output(client, tmp_path, decoded) -> None:
    outputs = _published(tmp_path, client)
    decoded.clear()
    second = _run(tmp_path, client, trust="decode")
    assert second.skipped == len(outputs)
    assert sorted(decoded) == sorted(map(str, outputs))


def test_other_options_do_not_trust_old_records(client, tmp_path, decoded) -> None:
    outputs = _published(tmp_path, client)
    decoded.clear()
    other = _run(tmp_path, client, resampling="nearest")
    assert sorted(decoded) == sorted(map(str, outputs))
    assert other.skipped == len(outputs)  # valid outputs are kept, as without a manifest
    tokens = {json.loads(line)["token"] for line in (tmp_path / "out" / MANIFEST_NAME).open()}
    assert len(tokens) == 2


def test_truncated_last_line_is_ignored(client, tmp_path, decoded) -> None:
    outputs = _published(tmp_path, client)
    manifest = tmp_path / "out" / MANIFEST_NAME
    text = manifest.read_text()
    manifest.write_text(text[: len(text) - 20])  # a crash in the middle of the last append
    assert len(read_manifest(tmp_path / "out")) == len(outputs) - 1
    decoded.clear()
    second = _run(tmp_path, client)
    assert second.skipped == len(outputs) and len(decoded) == 1
    # the torn line was ended before the new record: every record parses again
    assert len(read_manifest(tmp_path / "out")) == len(outputs)
    decoded.clear()
    assert _run(tmp_path, client).skipped == len(outputs) and decoded == []


def test_overwrite_ignores_the_manifest(client, tmp_path, decoded) -> None:
    outputs = _published(tmp_path, client)
    decoded.clear()
    again = _run(tmp_path, client, overwrite=True)
    assert again.done == len(outputs) and decoded == []


def test_writer_fsyncs_and_terminates_a_torn_line(tmp_path) -> None:
    (tmp_path / MANIFEST_NAME).write_text('{"v": 1, "path": "a.tif", "si')
    with ManifestWriter(tmp_path) as writer:
        writer.add({"path": "b.tif", "size": 1})
    assert list(read_manifest(tmp_path)) == ["b.tif"]


def test_cli_refuses_both_levels(tmp_path) -> None:
    good_tiles(tmp_path / "in", n=1)
    result = invoke(
        "batch", tmp_path / "in", "-o", tmp_path / "out", "--dst-crs", "EPSG:3857",
        "--verify-existing", "--reverify",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_help_names_the_three_levels() -> None:
    text = " ".join(invoke("batch", "--help").stdout.split())
    assert ".pipeline-manifest.jsonl" in text
    assert "--verify-existing" in text and "--reverify" in text and "full re-verification" in text
