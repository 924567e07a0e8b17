"""The child process of :class:`geoduck.testing_http.RangeServer`: a static file server with HTTP
range requests on 127.0.0.1 that logs every request (a JSON line, before answering it). Run as a
script (``python geoduck/_range_server.py ROOT --log FILE [--latency S]``); it imports nothing of
geoduck, so it starts fast.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import re
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
"""One byte range of a ``Range`` header (several ranges do not match: the whole file is sent)."""


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
        srv.record(self.command, unquote(urlsplit(self.path).path), self.headers.get("Range"))
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
        m = RANGE.match(spec) if spec else None
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

    def record(self, method: str, path: str, range_: str | None) -> None:
        with self.lock:
            self.log.write(json.dumps([method, path, range_]) + "\n")
            self.log.flush()

    def resolve(self, url_path: str) -> Path | None:
        """The file a request path names, or None (missing, a folder, or outside ``root``)."""
        rel = unquote(urlsplit(url_path).path).lstrip("/")
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        return target


def main(argv: Sequence[str] | None = None) -> None:
    """``python geoduck/_range_server.py ROOT [--latency S] --log FILE``: serve until terminated,
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
