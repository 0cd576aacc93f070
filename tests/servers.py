"""Test servers on 127.0.0.1: an HTTP range server with fault injection, and moto's S3.

`RangeServer` honours single and multi-range ``Range`` requests, counts the requests and bytes
it serves, and for chosen file names answers an error status, resets the connection in the
middle of a body, or answers late. `MotoS3` runs moto's S3 in server mode (in this process, or
as a ``moto_server`` subprocess that checks request signatures). Both bind 127.0.0.1 on a free
port and stop within bounded waits.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Container, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RANGE = re.compile(r"(\d*)-(\d*)")
_BOUNDARY = "pipeline-test-boundary"


class RangeServer(ThreadingHTTPServer):
    """Serves the files of ``root`` under ``/<token>/``, with byte ranges.

    Attributes
    ----------
    errors : dict
        Status code to answer for a file name (``{"forbidden.tif": 403}``).
    resets : dict
        File name to the block reads of it (GETs of ranges not starting at byte 0: the header
        is always served), numbered from 1, that are cut: half the body is sent, then the
        connection is reset (TCP RST). ``range(1, 10**9)``: every one.
    delays : dict
        File name to seconds to wait before answering any request for it.
    requests : list of (method, name, Range header or None)
    bytes_served : int
        Body bytes sent (headers not counted).
    """

    daemon_threads = True

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.token = uuid.uuid4().hex[:12]
        self.errors: dict[str, int] = {}
        self.resets: dict[str, Container[int]] = {}
        self.delays: dict[str, float] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.bytes_served = 0
        self.lock = threading.Lock()
        self._gets: dict[str, int] = {}
        super().__init__(("127.0.0.1", 0), _RangeHandler)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{self.token}/{name}"

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes_served = 0

    def count(self, name: str, method: str = "GET") -> int:
        """Requests received for ``name`` with ``method``."""
        with self.lock:
            return sum(1 for m, n, _ in self.requests if m == method and n == name)


@contextlib.contextmanager
def serving(root: pathlib.Path) -> Iterator[RangeServer]:
    """A `RangeServer` of ``root`` running in a thread for the duration of the block."""
    srv = RangeServer(root)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def _ranges(header: str | None, size: int) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` ranges of a ``bytes=`` header, clipped to ``size``."""
    if not header or not header.startswith("bytes="):
        return []
    out = []
    for part in header[len("bytes=") :].split(","):
        m = _RANGE.fullmatch(part.strip())
        if m is None or m.groups() == ("", ""):
            continue
        a, b = m.groups()
        start, end = (size - int(b), size - 1) if a == "" else (int(a), int(b or size - 1))
        start, end = max(0, start), min(size - 1, end)
        if start <= end:
            out.append((start, end))
    return out


class _RangeHandler(BaseHTTPRequestHandler):
    server: RangeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _reset(self, partial: bytes) -> None:
        """Send ``partial`` then abort the connection with a TCP reset."""
        self.wfile.write(partial)
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _answer(self, *, body_wanted: bool) -> None:
        srv = self.server
        prefix = f"/{srv.token}/"
        path = self.path.split("?", 1)[0]
        name = path[len(prefix) :] if path.startswith(prefix) else ""
        header = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((self.command, name, header))
            block_read = self.command == "GET" and not (header or "").startswith("bytes=0-")
            gets = srv._gets[name] = srv._gets.get(name, 0) + block_read
        if name in srv.delays:
            time.sleep(srv.delays[name])
        if name in srv.errors:
            return self._empty(srv.errors[name])
        file = srv.root / name
        if not name or "/" in name or not file.is_file():
            return self._empty(404)
        size = file.stat().st_size
        ranges = _ranges(header, size)

        def data(a: int, b: int) -> bytes:  # bytes a..b inclusive (large files: no full read)
            with open(file, "rb") as f:
                f.seek(a)
                return f.read(b - a + 1)

        if not ranges:
            status, body, ctype = 200, data(0, size - 1), "application/octet-stream"
        elif len(ranges) == 1:
            (start, end), ctype = ranges[0], "application/octet-stream"
            status, body = 206, data(start, end)
        else:
            parts = [
                f"--{_BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n".encode()
                + data(a, b)
                + b"\r\n"
                for a, b in ranges
            ]
            status, ctype = 206, f"multipart/byteranges; boundary={_BOUNDARY}"
            body = b"".join(parts) + f"--{_BOUNDARY}--\r\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        if len(ranges) == 1:
            self.send_header("Content-Range", f"bytes {ranges[0][0]}-{ranges[0][1]}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not body_wanted:
            return None
        if block_read and name in srv.resets and gets in srv.resets[name]:
            return self._reset(body[: len(body) // 2])
        with srv.lock:  # counted before sending: a client that has read it sees the count
            srv.bytes_served += len(body)
        self.wfile.write(body)
        return None

    def do_GET(self) -> None:
        self._answer(body_wanted=True)

    def do_HEAD(self) -> None:
        self._answer(body_wanted=False)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- moto's S3 ------------------------------------------------------------------------------

#: Credentials the in-process moto server accepts (it checks none).
TEST_KEYS = {"AWS_ACCESS_KEY_ID": "AKIATESTPIPELINE0001", "AWS_SECRET_ACCESS_KEY": "pipeline-test"}


class MotoS3:
    """moto's S3 on 127.0.0.1: ``ThreadedMotoServer`` here, or ``moto_server`` in a subprocess.

    With ``check_signatures`` the subprocess runs with ``INITIAL_NO_AUTH_ACTION_COUNT`` so that,
    after an IAM user and its access key are created, every request must be signed with that
    key (moto validates signatures only in this mode); `keys` then holds that user's key.
    """

    def __init__(self, *, check_signatures: bool = False) -> None:
        self.check_signatures = check_signatures
        self.keys = dict(TEST_KEYS)
        self._server: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, seconds: float = 30) -> MotoS3:
        if self.check_signatures:
            self.port = closed_port()
            exe = shutil.which("moto_server", path=os.path.dirname(sys.executable))
            assert exe, "moto_server is installed with moto[server]"
            env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
            self._proc = subprocess.Popen(
                [exe, "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + seconds
            while True:
                assert self._proc.poll() is None, "moto_server exited"
                try:
                    with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "moto_server did not start"
                    time.sleep(0.1)
            self._create_user()
        else:
            from moto.server import ThreadedMotoServer

            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            self.port = int(self._server.get_host_and_port()[1])
        return self

    def _create_user(self) -> None:
        """The three unauthenticated actions: a user, its key, a policy allowing everything."""
        iam = self.client("iam", {"AWS_ACCESS_KEY_ID": "bootstrap", "AWS_SECRET_ACCESS_KEY": "x"})
        iam.create_user(UserName="pipeline")
        key = iam.create_access_key(UserName="pipeline")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                          "Resource": "*"}]}  # fmt: skip
        iam.put_user_policy(
            UserName="pipeline", PolicyName="all", PolicyDocument=json.dumps(policy)
        )
        self.keys = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    def client(self, service: str = "s3", keys: dict[str, str] | None = None) -> Any:
        import boto3

        k = keys or self.keys
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=k["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=k["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def bucket(self, files: dict[str, pathlib.Path], *, public: bool = False) -> str:
        """A new bucket (a fresh name: GDAL caches what it read per URL) holding ``files``;
        ``public``: objects anyone may read (unsigned requests)."""
        name = f"pipeline-{uuid.uuid4().hex[:12]}"
        s3 = self.client()
        s3.create_bucket(Bucket=name)
        extra = {"ACL": "public-read"} if public else None
        for key, path in files.items():
            s3.upload_file(str(path), name, key, ExtraArgs=extra)
        return name

    def env(self) -> dict[str, str]:
        """Environment of a user of this server: boto3's endpoint variable and the keys."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                **self.keys}  # fmt: skip

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)


#: Variables that would point GDAL or boto3 at another store or at instance metadata.
CLEARED_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_S3_ENDPOINT",
    "AWS_HTTPS",
    "AWS_VIRTUAL_HOSTING",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_NO_SIGN_REQUEST",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def offline_aws_env(home: pathlib.Path) -> dict[str, str]:
    """Settings that keep GDAL and boto3 off the network when credentials are missing: no
    instance-metadata lookup beyond this machine, and ``home`` (no ``~/.aws`` files unless a
    test writes them) as the home folder."""
    return {
        "HOME": str(home),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CPL_AWS_EC2_API_ROOT_URL": f"http://127.0.0.1:{closed_port()}",
    }


def assert_open_equals_local(remote_path: str, local: pathlib.Path, source: str) -> None:
    """`pipeline.open_raster` of ``remote_path`` equals that of the ``local`` copy: the same
    block-aligned chunks, CRS, transform, dtype and values, read from GDAL path ``source``."""
    import numpy as np
    import rasterio

    import pipeline

    remote = pipeline.open_raster(remote_path)
    same = pipeline.open_raster(local)
    assert remote.encoding["source"] == source
    assert remote.chunks == same.chunks
    with rasterio.open(local) as ds:
        by, bx = ds.block_shapes[0]
    assert all(c % by == 0 for c in remote.chunks[1][:-1])
    assert all(c % bx == 0 for c in remote.chunks[2][:-1])
    assert remote.rio.crs == same.rio.crs
    assert remote.rio.transform() == same.rio.transform()
    assert remote.dtype == same.dtype
    np.testing.assert_array_equal(remote.values, same.values)
