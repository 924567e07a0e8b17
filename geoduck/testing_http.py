"""A static file server with HTTP range requests on 127.0.0.1, for tests and benchmarks of remote
rasters (``http://`` COGs read through GDAL's ``/vsicurl/``) without the network.

:class:`RangeServer` serves a folder from a child process (this file run as a script: it imports nothing of geoduck):
in the calling process a server thread could deadlock, since rasterio holds the GIL in some calls
that make GDAL read (e.g. ``mask_flag_enums``), and would share the CPU time the benchmarks
measure. It answers ``HEAD`` and ``GET`` with one ``Range: bytes=…`` (``206 Partial Content``;
several ranges in one header get the whole file, as a server without multipart support may),
waits ``latency`` seconds before each answer (a network round trip), and logs every request
before answering it, so :meth:`RangeServer.take` counts them exactly.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Request:
    """One request the server saw: method, URL path (no query) and the ``Range`` header (or None)."""

    method: str
    path: str
    range: str | None

    @property
    def whole_file(self) -> bool:
        """A GET of the whole file (no single byte range)."""
        return self.method == "GET" and (self.range is None or _RANGE.match(self.range) is None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as object stores and CDNs serve
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's hook name
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        srv = self.server
        srv.record(Request(self.command, unquote(urlsplit(self.path).path), self.headers.get("Range")))
        if srv.latency > 0:
            time.sleep(srv.latency)
        target = srv.resolve(self.path)
        if target is None:
            self._empty(404)
            return
        size = target.stat().st_size
        start, stop = 0, size  # [start, stop)
        status = 200
        spec = self.headers.get("Range")
        m = _RANGE.match(spec) if spec else None
        if m is not None and (m.group(1) or m.group(2)):
            first, last = m.group(1), m.group(2)
            if first:
                start, stop = int(first), min(size, int(last) + 1 if last else size)
            else:  # a suffix: the last n bytes
                start, stop = max(0, size - int(last)), size
            if start >= size:
                self._empty(416, {"Content-Range": f"bytes */{size}"})
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(target.stat().st_mtime, usegmt=True))
        self.send_header("Content-Length", str(stop - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        if body:
            with open(target, "rb") as f:
                f.seek(start)
                try:
                    self.wfile.write(f.read(stop - start))
                except (BrokenPipeError, ConnectionResetError):  # the client had what it needed
                    pass

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    """Serves ``root`` (no listing, nothing outside it), logging each request as a JSON line."""

    daemon_threads = True

    def __init__(self, root: Path, latency: float, log: IO[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root.resolve()
        self.latency = latency
        self.log = log
        self.lock = threading.Lock()

    def record(self, request: Request) -> None:
        with self.lock:
            self.log.write(json.dumps([request.method, request.path, request.range]) + "\n")
            self.log.flush()

    def resolve(self, url_path: str) -> Path | None:
        """The file a request path names, or None (missing, a folder, or outside ``root``)."""
        rel = unquote(urlsplit(url_path).path).lstrip("/")
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        return target


class RangeServer:
    """Serve the files under ``root`` at ``http://127.0.0.1:<port>/`` from a child process.

    Use as a context manager (or :meth:`start` / :meth:`stop`). ``latency``: seconds slept before
    each answer. Folders and paths outside ``root`` are 404 (no directory listing)."""

    def __init__(self, root: str | os.PathLike[str], latency: float = 0.0) -> None:
        self.root = Path(root).resolve()
        self.latency = latency
        self._proc: subprocess.Popen[str] | None = None
        self._log: Path | None = None
        self._offset = 0
        self._port = 0

    @property
    def url(self) -> str:
        """The base URL (no trailing slash)."""
        if self._proc is None:
            raise RuntimeError("RangeServer is not started")
        return f"http://127.0.0.1:{self._port}"

    def url_of(self, path: str | os.PathLike[str]) -> str:
        """The URL of a file under ``root``."""
        return f"{self.url}/{Path(path).resolve().relative_to(self.root).as_posix()}"

    def take(self) -> list[Request]:
        """The requests answered (or being answered) since the last call, in arrival order."""
        if self._log is None:
            return []
        with open(self._log, encoding="utf-8") as f:
            f.seek(self._offset)
            text = f.read()
        complete = text[: text.rfind("\n") + 1]
        self._offset += len(complete.encode())
        return [Request(*json.loads(line)) for line in complete.splitlines()]

    def start(self) -> RangeServer:
        fd, log = tempfile.mkstemp(prefix="geoduck-range-server-", suffix=".jsonl")
        os.close(fd)
        self._log = Path(log)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            str(self.root),
            "--latency",
            str(self.latency),
            "--log",
            log,
        ]
        self._proc = proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline() if proc.stdout is not None else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"range server did not start (exit code {proc.poll()})")
        self._port = int(line.split()[1])
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """``python geoduck/testing_http.py ROOT [--latency S] --log FILE``: serve until terminated,
    printing ``PORT <n>`` once listening."""
    parser = argparse.ArgumentParser(description="Serve a folder with HTTP range requests on 127.0.0.1.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before each answer")
    parser.add_argument("--log", type=Path, required=True, help="file the requests are appended to (JSON lines)")
    args = parser.parse_args(argv)
    with open(args.log, "a", encoding="utf-8") as log, _Server(args.root, args.latency, log) as server:
        print(f"PORT {server.server_address[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
