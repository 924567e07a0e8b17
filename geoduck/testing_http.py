"""A static file server with HTTP range requests on 127.0.0.1, for tests and benchmarks of remote
rasters (``http://`` COGs read through GDAL's ``/vsicurl/``) without the network.

:class:`RangeServer` serves a folder from a child process (:mod:`geoduck._range_server` run as a script):
in the calling process a server thread could deadlock, since rasterio holds the GIL in some calls
that make GDAL read (e.g. ``mask_flag_enums``), and would share the CPU time the benchmarks
measure. It answers ``HEAD`` and ``GET`` with one ``Range: bytes=…`` (``206 Partial Content``;
several ranges in one header get the whole file, as a server without multipart support may),
waits ``latency`` seconds before each answer (a network round trip), and logs every request
before answering it, so :meth:`RangeServer.take` counts them exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import _range_server
from .errors import ArgumentError, StorageError


@dataclass(frozen=True)
class Request:
    """One request the server saw: method, URL path (no query) and the ``Range`` header (or None)."""

    method: str
    path: str
    range: str | None

    @property
    def whole_file(self) -> bool:
        """A GET of the whole file (no single byte range)."""
        return self.method == "GET" and (self.range is None or _range_server.RANGE.match(self.range) is None)


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
            raise ArgumentError("RangeServer is not started: use it as a context manager or call start()")
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
            str(Path(_range_server.__file__).resolve()),
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
            raise StorageError(f"the range server serving {self.root} did not start (exit code {proc.poll()})")
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
