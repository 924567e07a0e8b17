"""A moto S3 server on 127.0.0.1 for the tests that read catalogs and rasters from object storage.

:func:`point_aws_at` sets the standard ``AWS_*`` variables for a local endpoint (and clears those that
would send requests elsewhere); :func:`moto_s3` runs moto's threaded server with them and yields an
s3fs filesystem holding one empty bucket.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

_CLEARED = ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING")


def point_aws_at(mp: pytest.MonkeyPatch, endpoint: str) -> None:
    """Make boto3, s3fs, DuckDB httpfs and GDAL send S3 requests to ``endpoint`` (``http://host:port``)
    with moto's test credentials."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
    ):
        mp.setenv(name, value)
    for name in _CLEARED:
        mp.delenv(name, raising=False)


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1 with the AWS variables pointing at it (restored after); yields an
    s3fs filesystem in which ``bucket`` exists. Skips when s3fs, moto or DuckDB's httpfs is missing."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    from geoduck import engine

    if engine.httpfs_extension_path() is None:
        pytest.skip("duckdb-extension-httpfs is not installed")
    import fsspec
    import s3fs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mp = pytest.MonkeyPatch()
    try:
        point_aws_at(mp, f"http://{host}:{port}")
        s3fs.S3FileSystem.clear_instance_cache()  # (instances remember the endpoint they were made for)
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir(bucket)
        yield fs
    finally:
        mp.undo()
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
