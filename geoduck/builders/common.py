"""What every builder shares: input resolution, filename parsing, incremental skip, and the parallel
streaming driver that turns files into catalog parts (its report: :class:`geoduck.report.BuildReport`).
Everything backend-specific comes from a :class:`geoduck.backends.Backend` value.

Headers are read in worker processes in chunks; finished rows are streamed into parts of at most
``part_rows`` rows, so memory does not grow with the number of files. A file that cannot be read
is reported (path and reason) and skipped; the build goes on.

With a ``dask.distributed`` client the file list is partitioned into tasks instead: each task reads
its files' headers and writes its own parts (:func:`build_task`), and the driver only merges the
tasks' reports. Parts appear atomically whoever writes them, so no coordination is needed.
"""

from __future__ import annotations

import glob as globmod
import hashlib
import logging
import multiprocessing
import os
import re
import select
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.context import BaseContext
from pathlib import Path
from stat import S_ISDIR
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from .. import schema, store
from ..backends import Backend, CliOption, ReadEnv, ReadFn, reserved_columns
from ..errors import ArgumentError, BuildError, GeoduckError, StorageError
from ..intervals import Interval, interval_from_strings
from ..report import BuildReport

if TYPE_CHECKING:
    from ..catalog import Catalog

__all__ = ["BuildReport", "FilenameParser", "ReadEnv", "ReadFn", "resolve_items", "resolve_paths", "run_build"]

log = logging.getLogger("geoduck.build")

PART_ROWS = store.MAX_PART_ROWS
"""Rows per part written by a build (bounds build memory; see :data:`geoduck.store.MAX_PART_ROWS`)."""

CHUNK_FILES = 32
"""Files per task sent to a worker process."""

MAX_TASK_FILES = PART_ROWS
"""Most files per task of a distributed build (each task writes at least one part)."""

TASKS_PER_THREAD = 4
"""A distributed build cuts its files into about this many tasks per cluster thread (fewer when
that would exceed :data:`MAX_TASK_FILES` files per task), for load balance."""

ARROW_ROWS = 1_000
"""Rows of the part being filled that are kept as dicts before being converted to (compact) Arrow."""

TIME_GROUPS = frozenset({"date", "start", "stop"})

SKIPPED_EXAMPLES = 3
"""File names listed in :attr:`BuildReport.skipped_examples`."""

SKIPPED = "__skipped__"
"""Key of a header row that stands for an item the reader skipped (e.g. an empty layer of a file
whose other layers are indexed): its value, the reason, goes to ``BuildReport.errors``."""


@dataclass
class _Tally:
    """Counts of one build, or of one task of a distributed build (merged by the driver)."""

    indexed: int = 0
    files: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    concurrent: int = 0
    """Files dropped because a concurrent build indexed them first."""

    def merge(self, other: _Tally) -> None:
        self.indexed += other.indexed
        self.files += other.files
        self.errors.extend(other.errors)
        self.parts.extend(other.parts)
        self.concurrent += other.concurrent


class _PartBuffer:
    """The rows of the part being filled: row dicts, converted to Arrow every ``ARROW_ROWS`` rows
    (a few times smaller), written out as one part by :meth:`write`."""

    def __init__(self, arrow_schema: pa.Schema) -> None:
        self._schema = arrow_schema
        self._rows: list[dict[str, Any]] = []
        self._tables: list[pa.Table] = []
        self.num_rows = 0

    def append(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.num_rows += 1
        if len(self._rows) >= ARROW_ROWS:
            self._convert()

    def _convert(self) -> None:
        if self._rows:
            self._tables.append(store.table_from_rows(self._rows, self._schema))
            self._rows.clear()

    def write(
        self, out: Path, tag: str = "", committed: store.CommittedPaths | None = None
    ) -> tuple[Path | None, int, int]:
        """Write the buffered rows as a new part and empty the buffer; returns (the part or None,
        rows dropped, files dropped). With ``committed``, rows of files another builder indexed
        meanwhile are dropped, under the catalog's append lock."""
        self._convert()
        if not self._tables:
            return None, 0, 0
        table = pa.concat_tables(self._tables)
        self._tables, self.num_rows = [], 0
        if committed is None:
            return store.write_part(table, out, tag=tag), 0, 0
        out.mkdir(parents=True, exist_ok=True)
        with store.append_lock(out):
            done = committed.refresh()
            paths = table.column(schema.FILEPATH)
            dropped = dropped_files = 0
            if done:
                dup = pc.is_in(paths, value_set=pa.array(sorted(done), pa.string()))
                dropped = int(pc.sum(dup).as_py() or 0)
                if dropped:
                    dropped_files = len(set(pc.filter(paths, dup).to_pylist()))
                    table = table.filter(pc.invert(dup))
            part = store.write_part(table, out, tag=tag) if table.num_rows else None
            if part is not None:
                committed.mark_written(part, table.column(schema.FILEPATH).to_pylist())
        return part, dropped, dropped_files


# -- inputs -------------------------------------------------------------------------------------


def resolve_paths(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    extensions: Sequence[str],
    directory_suffixes: Sequence[str] = (),
    errors: list[tuple[str, str]] | None = None,
) -> list[str]:
    """Absolute paths from a list, a glob pattern, or a directory (see :func:`resolve_items`)."""
    return list(resolve_items(paths, extensions, directory_suffixes, errors))


def resolve_items(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    extensions: Sequence[str],
    directory_suffixes: Sequence[str] = (),
    errors: list[tuple[str, str]] | None = None,
) -> dict[str, str]:
    """Absolute paths from a list, a glob pattern, or a directory (recursive, by extension), each
    mapped to its path relative to the folder that was scanned ('/'-separated): a directory given
    (``S2B_30TVK_20230615_0_L2A/B04.tif``), or the folder part of a glob before its first wildcard.
    A file given by name maps to its absolute path, a URI to itself.

    A directory whose name ends with one of ``directory_suffixes`` (e.g. a ``.zarr`` store) is an
    item itself: kept when given or found, never searched. URIs (``scheme://…``) are kept as given.
    Duplicates are dropped (the first mapping wins), order is kept. A directory that cannot be
    listed is appended to ``errors`` as ``(path, reason)`` (and logged), never skipped silently.
    """

    def unreadable(exc: OSError) -> None:
        where = os.path.abspath(exc.filename) if exc.filename else "?"
        reason = f"cannot list directory: {exc.strerror or exc}"
        log.warning("skipped %s: %s", where, reason)
        if errors is not None:
            errors.append((where, reason))

    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: dict[str, str] = {}
    exts = tuple(e.lower() for e in extensions)
    dir_exts = tuple(e.lower() for e in directory_suffixes)

    def is_dir_item(name: str) -> bool:
        return bool(dir_exts) and name.rstrip("/").lower().endswith(dir_exts)

    def add(path: str, root: str | None) -> None:
        if path not in out:
            out[path] = path if root is None else os.path.relpath(path, root).replace(os.sep, "/")

    for item in items:
        text = os.fspath(item)
        if "://" in text:
            out.setdefault(text, text)
            continue
        p = Path(text).expanduser()
        if p.is_dir() and not is_dir_item(p.name):
            root = os.path.abspath(p)
            for walk_root, dirs, files in os.walk(p, onerror=unreadable):
                dirs.sort()
                stores = [d for d in dirs if is_dir_item(d)]
                dirs[:] = [d for d in dirs if not is_dir_item(d)]
                found = [n for n in files if n.lower().endswith(exts)] + stores
                for name in sorted(found):
                    if not name.startswith("."):
                        add(os.path.abspath(os.path.join(walk_root, name)), root)
        elif globmod.has_magic(text):
            root = _glob_root(p)
            if "**" in text:  # glob skips folders it cannot list without a word: find and report them
                for _ in os.walk(root, onerror=unreadable):
                    pass
            for match in sorted(globmod.glob(str(p), recursive=True)):
                inside_store = any(is_dir_item(part) for part in Path(match).parts[:-1])
                if not inside_store and (not Path(match).is_dir() or is_dir_item(match)):
                    add(os.path.abspath(match), root)
        else:
            add(os.path.abspath(p), None)
    return out


def _glob_root(pattern: Path) -> str:
    """The folder part of a glob pattern before its first wildcard (absolute)."""
    parts = pattern.parts
    fixed = next((i for i, part in enumerate(parts) if globmod.has_magic(part)), len(parts))
    return os.path.abspath(Path(*parts[:fixed]) if fixed else Path("."))


Regex = str | re.Pattern[str]
"""A file-name regex: a pattern string, or a compiled pattern (its flags, e.g. ``re.VERBOSE``, kept)."""


@dataclass(frozen=True)
class FilenameParser:
    """Parses file names with a regex: ``date`` or ``start``/``stop`` groups give the interval,
    a ``band`` group marks band files of a scene, every other named group becomes a string column.

    The regex is searched (``re.search``) in the base name of each file, or, when the pattern
    contains a ``/``, in its path relative to the folder that was scanned (see
    :func:`resolve_items`), so dates and tiles living in folder names can be matched. A file the
    regex does not match is skipped by builds (counted, not an error).

    Args:
        regex: a pattern string or a compiled ``re.Pattern`` (None: no file-name columns, static rows).
        date_format: strptime format of the time groups (default: common forms, see
            :func:`geoduck.intervals.parse_datetime`).
        verbose: compile a string ``regex`` with ``re.VERBOSE`` (whitespace and ``#`` comments
            ignored, as TorchGeo writes its dataset regexes); adds the flag to a compiled one.
        exact_times: keep a time value with a time of day as an instant instead of the period of
            its least significant field (see :mod:`geoduck.intervals`).
    """

    regex: Regex | None = None
    date_format: str | None = None
    verbose: bool = False
    exact_times: bool = False

    @property
    def pattern(self) -> re.Pattern[str] | None:
        return _compile(self.regex, re.VERBOSE if self.verbose else 0) if self.regex is not None else None

    @property
    def regex_text(self) -> str | None:
        """The regex as text (the pattern of a compiled one)."""
        return self.regex.pattern if isinstance(self.regex, re.Pattern) else self.regex

    @property
    def extra_columns(self) -> tuple[str, ...]:
        pat = self.pattern
        return tuple(g for g in pat.groupindex if g not in TIME_GROUPS) if pat else ()

    @property
    def has_bands(self) -> bool:
        """The regex has a ``band`` group: matched files are bands of scenes (``scene_id`` column)."""
        pat = self.pattern
        return pat is not None and schema.BAND in pat.groupindex

    @property
    def matches_paths(self) -> bool:
        """The pattern contains ``/``: it is searched in relative paths, not base names."""
        text = self.regex_text
        return text is not None and "/" in text

    def validate(self) -> None:
        """Check the regex's groups make sense; raises :class:`ArgumentError`."""
        if self.regex is None:
            if self.date_format is not None:
                raise ArgumentError(
                    "date_format is given but filename_regex is not; pass filename_regex with a (?P<date>...) group"
                )
            return
        if not isinstance(self.regex, str | re.Pattern):
            raise ArgumentError(f"filename_regex={self.regex!r} must be a str or a compiled re.Pattern")
        groups = set(self.pattern.groupindex)  # type: ignore[union-attr]
        if "date" in groups and groups & {"start", "stop"}:
            raise ArgumentError(
                f"filename_regex={self.regex_text!r} has both a 'date' group and "
                "'start'/'stop' groups; use one or the other"
            )
        if len(groups & {"start", "stop"}) == 1:
            missing = ({"start", "stop"} - groups).pop()
            raise ArgumentError(
                f"filename_regex={self.regex_text!r} has no (?P<{missing}>...) group; "
                "an interval needs both 'start' and 'stop'"
            )
        if self.date_format is not None and not groups & TIME_GROUPS:
            raise ArgumentError(
                f"date_format={self.date_format!r} is given but filename_regex="
                f"{self.regex_text!r} has no 'date' or 'start'/'stop' group"
            )
        # DuckDB resolves column names case-insensitively: `ID` is `id`, `Tile` is `tile`.
        reserved = {c.lower() for c in reserved_columns()}
        columns = sorted(groups - TIME_GROUPS)
        clash = [g for g in columns if g.lower() in reserved]
        if clash:
            raise ArgumentError(
                f"filename_regex={self.regex_text!r} has group(s) {clash} named like catalog "
                "columns (names are case-insensitive); rename them"
            )
        twins = [g for g in columns if [c.lower() for c in columns].count(g.lower()) > 1]
        if twins:
            raise ArgumentError(
                f"filename_regex={self.regex_text!r} has groups {twins} that differ only by case "
                "(column names are case-insensitive); rename them"
            )

    def subject(self, path: str, relative: str | None = None) -> str:
        """The string the regex is searched in: the base name, or with a ``/`` in the pattern the
        path relative to the scanned folder (``relative``; default ``path``)."""
        if self.matches_paths:
            return relative if relative is not None else path
        return os.path.basename(path.rstrip("/"))

    def parse(self, name: str) -> tuple[Interval, dict[str, str | None]] | None:
        """Interval and extra columns of the file whose :meth:`subject` is ``name`` (``scene_id``
        too when the regex has a ``band`` group), or None if the regex does not match it (it always
        matches without a regex); raises :class:`GeoduckError` if its time does not parse."""
        pat = self.pattern
        if pat is None:
            return Interval.static(), {}
        m = pat.search(name)
        if m is None:
            return None
        groups = m.groupdict()
        interval = _interval(
            groups.get("date"), groups.get("start"), groups.get("stop"), self.date_format, self.exact_times
        )
        columns = {k: v for k, v in groups.items() if k not in TIME_GROUPS}
        if schema.BAND in groups:
            columns[schema.SCENE_ID] = scene_key(groups) if groups[schema.BAND] is not None else None
        return interval, columns


def scene_key(groups: dict[str, str | None]) -> str:
    """The ``scene_id`` of a band file: the values of every group but ``band``, in the regex's
    order, joined by ``|`` (a group that did not take part counts as empty)."""
    return "|".join(v or "" for k, v in groups.items() if k != schema.BAND)


@lru_cache(maxsize=4096)
def _interval(
    date: str | None, start: str | None, stop: str | None, date_format: str | None, exact_times: bool = False
) -> Interval:
    """:func:`interval_from_strings`, cached: the files of an archive share few dates."""
    return interval_from_strings(date=date, start=start, stop=stop, date_format=date_format, exact_times=exact_times)


_REGEX_CACHE: dict[tuple[Regex, int], re.Pattern[str]] = {}


def _compile(regex: Regex, flags: int = 0) -> re.Pattern[str]:
    key = (regex, flags)
    pat = _REGEX_CACHE.get(key)
    if pat is None:
        try:
            if isinstance(regex, re.Pattern):
                pat = regex if regex.flags & flags == flags else re.compile(regex.pattern, regex.flags | flags)
            else:
                pat = re.compile(regex, flags)
        except re.error as exc:
            raise ArgumentError(
                f"filename_regex={getattr(regex, 'pattern', regex)!r} is not a valid regex: {exc}"
            ) from None
        _REGEX_CACHE[key] = pat
    return pat


def item_id(backend: str, filepath: str, sub: str | None = None) -> str:
    """Stable row id: 16 hex digits of BLAKE2b over backend, path and variable/layer."""
    key = f"{backend}\x00{filepath}\x00{sub or ''}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def file_stat(path: str) -> tuple[int | None, int | None]:
    """(size in bytes, mtime in µs since epoch) of a local file or directory; (None, None) for URIs."""
    if "://" in path:
        return None, None
    st = os.stat(path)
    if S_ISDIR(st.st_mode):  # Zarr stores: size of the tree is costly; mtime of the root is enough
        return 0, st.st_mtime_ns // 1000
    return st.st_size, st.st_mtime_ns // 1000


# -- command-line options shared by backends (see :attr:`Backend.cli_options`) ---------------------

REGEX_OPTION = CliOption(
    ("--regex",),
    "filename_regex",
    "Regex on file names; (?P<date>…) or (?P<start>…)/(?P<stop>…) give time, other groups columns.",
)
DATE_FORMAT_OPTION = CliOption(("--date-format",), "date_format", "strptime format of the date groups (default: auto).")
REGEX_VERBOSE_OPTION = CliOption(
    ("--regex-verbose",), "regex_verbose", "Compile --regex with re.VERBOSE (whitespace, # comments).", is_flag=True
)
EXACT_TIMES_OPTION = CliOption(
    ("--exact-times",), "exact_times", "Times of day are instants, not their second/minute.", is_flag=True
)
FILENAME_OPTIONS = (REGEX_OPTION, DATE_FORMAT_OPTION, REGEX_VERBOSE_OPTION, EXACT_TIMES_OPTION)
"""The file-name options of a backend whose builder takes every :class:`FilenameParser` argument."""


# -- the driver ---------------------------------------------------------------------------------


def _read_chunk(
    read_fn: ReadFn, options: Any, chunk: list[str], read_env: ReadEnv | None = None
) -> list[tuple[str, list[dict] | str]]:
    out: list[tuple[str, list[dict] | str]] = []
    with read_env() if read_env is not None else nullcontext():
        for path in chunk:
            try:
                out.append((path, read_fn(path, options)))
            except Exception as exc:  # noqa: BLE001 - every failure is reported with the file's path
                out.append((path, _reason(exc)))
    return out


def _reason(exc: Exception) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return reason if isinstance(exc, GeoduckError) else f"{type(exc).__name__}: {reason}"


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _results(
    read_fn: ReadFn, options: Any, paths: Sequence[str], workers: int, read_env: ReadEnv | None = None
) -> Iterator[tuple[str, list[dict] | str]]:
    """Header results in completion order, at most ``2 * workers`` chunks in flight."""
    if workers <= 1 or len(paths) <= CHUNK_FILES:
        for chunk in _chunks(paths, CHUNK_FILES):
            yield from _read_chunk(read_fn, options, chunk, read_env)
        return
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_mp_context(read_fn), initializer=exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending: set[Future] = set()
        chunks = _chunks(paths, CHUNK_FILES)
        for chunk in chunks:
            pending.add(pool.submit(_read_chunk, read_fn, options, chunk, read_env))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.add(pool.submit(_read_chunk, read_fn, options, nxt, read_env))
                yield from fut.result()


def exit_with_parent(pid: int) -> None:
    """Pool worker initializer: end this worker as soon as the build process ``pid`` dies.

    A SIGKILLed build cannot shut its pool down, and its workers (children of the forkserver,
    not of the build) would wait for work forever, keeping the forkserver's resource tracker
    alive too. A daemon thread waits for ``pid`` to exit (a pidfd where the OS has one, else a
    poll every :data:`PARENT_POLL_S` seconds) and then exits the worker."""
    threading.Thread(target=_wait_for_exit, args=(pid,), name="geoduck-parent-watch", daemon=True).start()


PARENT_POLL_S = 0.5
"""Seconds between checks that a pool worker's build process is alive (without pidfd support)."""


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux), or already gone
        while _pid_alive(pid):
            time.sleep(PARENT_POLL_S)
    else:
        select.select([fd], [], [])  # readable once the process has exited
    os._exit(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _mp_context(read_fn: ReadFn) -> BaseContext:
    """The context header workers start from: ``forkserver`` (no inherited DuckDB/GDAL threads)
    whose processes never run the user's ``__main__`` (see :class:`_WorkerProcess`), with
    ``read_fn``'s module preloaded in the server so workers start in milliseconds instead of each
    importing geoduck's GDAL/PROJ/Arrow stack again (~1 s of CPU).

    Where ``forkserver`` does not exist (Windows), the platform's default context is used, and a
    script building many files there needs the usual ``if __name__ == "__main__":`` guard.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context()
    from multiprocessing import forkserver

    # Takes effect when the server starts (once per process). ``__main__`` is left out: the server
    # must not re-run a script's top-level code (which may be this very build).
    preload = [
        m
        for m in getattr(forkserver._forkserver, "_preload_modules", [])  # noqa: SLF001
        if m != "__main__"
    ]
    if read_fn.__module__ not in preload:
        preload.append(read_fn.__module__)
    forkserver.set_forkserver_preload(preload)
    return _WORKER_CONTEXT


@contextmanager
def _main_hidden() -> Iterator[None]:
    """``sys.modules["__main__"]`` replaced by an empty module for the duration of the block."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main


if sys.platform != "win32":  # forkserver exists on every POSIX platform
    from multiprocessing.context import ForkServerContext, ForkServerProcess

    class _WorkerProcess(ForkServerProcess):
        """A forkserver process that does not import the parent's ``__main__``.

        multiprocessing makes a ``spawn``/``forkserver`` child re-import the parent's main script
        (as ``__mp_main__``) so that functions defined there unpickle. A script whose build is
        top-level code (no ``if __name__ == "__main__":`` guard) then starts the build again in
        every worker, which dies (``BrokenProcessPool``). Header workers run only geoduck's own
        module-level functions, so nothing of ``__main__`` is needed: the start data is made while
        ``__main__`` is hidden, and neither the worker nor a forkserver started for it runs the
        script.
        """

        @staticmethod
        def _Popen(process_obj: Any) -> Any:  # noqa: N802 - multiprocessing's hook name
            with _main_hidden():
                return ForkServerProcess._Popen(process_obj)  # noqa: SLF001

    class _WorkerContext(ForkServerContext):
        """The ``forkserver`` context whose processes are :class:`_WorkerProcess`."""

        Process = _WorkerProcess

    _WORKER_CONTEXT = _WorkerContext()


Named = dict[str, tuple[Interval, dict[str, str | None]]]
"""``path → (interval, file-name columns)`` of the files to index (from :class:`FilenameParser`)."""


@dataclass(frozen=True)
class BuildSpec:
    """Everything but the file list that turns header results into parts (picklable: it travels
    with every task of a distributed build)."""

    backend: Backend
    out: Path
    arrow_schema: pa.Schema
    options: Any
    """The backend's reader options (second argument of :attr:`Backend.read_header`)."""
    part_rows: int
    tag: str = ""
    """Marks the names of the parts this build writes (see :func:`run_build`'s cleanup)."""


class _RowWriter:
    """Turns header results into catalog rows and writes them as parts of at most ``part_rows``
    rows (checked after each file), counting into ``tally``."""

    def __init__(self, spec: BuildSpec, named: Named, tally: _Tally, *, guard_concurrent: bool = False) -> None:
        self.spec = spec
        self.named = named
        self.tally = tally
        self.batch = _PartBuffer(spec.arrow_schema)
        self.committed = store.CommittedPaths(spec.out) if guard_concurrent else None

    def add(self, path: str, result: list[dict] | str) -> None:
        """Add one file's header rows (or, for a string, the reason it could not be read)."""
        spec, tally = self.spec, self.tally
        if isinstance(result, str):
            tally.errors.append((path, result))
            log.warning("skipped %s: %s", path, result)
            return
        interval, extras = self.named[path]
        for header in result:
            if SKIPPED in header:
                tally.errors.append((path, header[SKIPPED]))
                log.warning("skipped part of %s: %s", path, header[SKIPPED])
                continue
            row = dict(header)
            row.update(extras)
            sub_key = spec.backend.sub_key
            row[schema.ID] = item_id(spec.backend.name, path, header.get(sub_key) if sub_key else None)
            row[schema.FILEPATH] = path
            row[schema.BACKEND] = spec.backend.name
            row[schema.VERSION] = schema.SCHEMA_VERSION
            if schema.START not in row:
                row[schema.START], row[schema.END] = interval.start, interval.end
            self.batch.append(row)
            tally.indexed += 1
        tally.files += 1
        if self.batch.num_rows >= spec.part_rows:
            self.flush()

    def flush(self) -> None:
        """Write the rows not yet written as a part (minus files a concurrent build indexed)."""
        part, rows, files = self.batch.write(self.spec.out, self.spec.tag, self.committed)
        self.tally.indexed -= rows
        self.tally.files -= files
        self.tally.concurrent += files
        if part is not None:
            self.tally.parts.append(str(part))


def build_task(spec: BuildSpec, named: Named) -> _Tally:
    """One task of a distributed build: read the headers of ``named``'s files (in chunks of
    :data:`CHUNK_FILES`, in this process) and write their rows as parts; returns the counts."""
    tally = _Tally()
    writer = _RowWriter(spec, named, tally)
    for chunk in _chunks(list(named), CHUNK_FILES):
        for path, result in _read_chunk(spec.backend.read_header, spec.options, chunk, spec.backend.read_env):
            writer.add(path, result)
    writer.flush()
    return tally


def _extra_columns(out: Path, parser: FilenameParser) -> tuple[list[str], bool]:
    """File-name columns of new parts, and whether they have a ``scene_id`` column: those of the
    existing catalog (its parts must keep one schema, so that a plain
    ``read_parquet('<dir>/*.parquet')`` reads them all), else the regex's groups.

    Raises :class:`ArgumentError` when the regex has groups (or a ``band`` group, hence scenes)
    that the existing catalog lacks.
    """
    if not (out.is_dir() and store.list_parts(out)):
        return list(parser.extra_columns), parser.has_bands
    columns = store.part_columns(out)
    reserved = reserved_columns()
    existing = [c for c in columns if c not in reserved]
    new = [c for c in parser.extra_columns if c not in existing]
    if new:
        raise ArgumentError(
            f"filename_regex={parser.regex_text!r} has group(s) {new} that the catalog at {str(out)!r} has no "
            f"column for (its file-name columns: {existing}); parts are append-only, so use the same "
            "groups or build into a new out_dir"
        )
    if parser.has_bands and schema.SCENE_ID not in columns:
        raise ArgumentError(
            f"filename_regex={parser.regex_text!r} has a 'band' group but the catalog at {str(out)!r} has no "
            f"{schema.SCENE_ID!r} column (it was built without band files); build into a new out_dir"
        )
    return existing, schema.SCENE_ID in columns


def _check_scene_bands(named: Named, tally: _Tally) -> None:
    """Drop (as errors) files that would be a second file of the same band of one scene: the
    regex does not tell their scenes apart."""
    seen: dict[tuple[str, str], str] = {}
    for path, (_, columns) in list(named.items()):
        scene, band = columns.get(schema.SCENE_ID), columns.get(schema.BAND)
        if scene is None or band is None:
            continue
        first = seen.setdefault((scene, band), path)
        if first != path:
            del named[path]
            reason = (
                f"band {band!r} of scene {scene!r} is already {first}; add a group to filename_regex "
                "that tells these scenes apart (e.g. the folder or the tile)"
            )
            tally.errors.append((path, reason))
            log.warning("skipped %s: %s", path, reason)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_build(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    backend: Backend,
    options: Any = None,
    parser: FilenameParser | None = None,
    workers: int | None = None,
    progress: bool = True,
    part_rows: int = PART_ROWS,
    client: Any = None,
    task_files: int | None = None,
) -> BuildReport:
    """Index ``paths`` into new parts of the catalog at ``out_dir`` (see module doc).

    ``backend`` says which files to look for and how to read them: ``backend.read_header(path,
    options)`` reads one file's header rows; ``backend.read_env()``, when set, is entered once around
    each chunk of reads (in the process doing them), e.g. for GDAL configuration options.
    Directories named ``*<directory_suffix>`` (e.g. ``.zarr`` stores) are items, not searched.
    ``parser`` parses file names (default: none, static rows).

    With ``client`` (a ``dask.distributed.Client``) the files are cut into tasks of ``task_files``
    files (default: see :data:`TASKS_PER_THREAD`) run on the cluster (``workers`` is then unused);
    each task writes its own parts, so ``out_dir`` must be a directory every worker can write (a
    shared file system for a multi-machine cluster). ``backend`` and ``options`` must be picklable
    (module-level functions). A task that fails as a whole has each of its files reported
    in ``errors``; parts left by a failed or rerun attempt of a task are removed at the end.
    """
    parser = parser if parser is not None else FilenameParser()
    parser.validate()
    extensions, directory_suffixes = backend.extensions, backend.directory_suffixes
    out_dir = store.local_path(out_dir)
    unlisted: list[tuple[str, str]] = []
    out = Path(out_dir).expanduser()
    relative = resolve_items(paths, extensions, directory_suffixes, unlisted)
    files = _outside(list(relative), out)
    if not files:
        looked_for = ", ".join((*extensions, *directory_suffixes))
        found = f"; unreadable: {unlisted[0][0]}: {unlisted[0][1]}" if unlisted else ""
        raise BuildError(f"no input files found in {paths!r} (looked for {looked_for}){found}")
    if out.exists() and not out.is_dir():
        raise BuildError(f"out_dir {str(out_dir)!r} exists and is not a directory")
    extra_columns, scenes = _extra_columns(out, parser)  # fails before any work if the regex does not fit

    tally = _Tally()
    tally.errors.extend(unlisted)
    # File names first (cheap): a regex matching nothing is a user error, not N skipped files.
    named: Named = {}
    skipped: list[str] = []
    for path in files:
        name = parser.subject(path, relative[path])
        try:
            parsed = parser.parse(name)
        except GeoduckError as exc:
            tally.errors.append((path, str(exc)))
            log.warning("skipped %s: %s", path, exc)
            continue
        if parsed is None:
            skipped.append(name)
        else:
            named[path] = parsed
    if parser.regex is not None and skipped and not named and not tally.errors:
        raise ArgumentError(
            f"filename_regex {parser.regex_text!r} matches none of the {len(files)} files "
            f"(e.g. {skipped[0]!r}); check the pattern against "
            f"{'their paths relative to the scanned folder' if parser.matches_paths else 'the file names'}"
        )
    if skipped:
        log.info("%d file(s) not matched by filename_regex, e.g. %s", len(skipped), skipped[0])
    _check_scene_bands(named, tally)

    # Incremental: skip files indexed with the same size and mtime; report changed ones.
    known = store.indexed_files(out) if out.is_dir() else {}
    todo: list[str] = []
    unchanged = 0
    changed: list[str] = []
    for path in named:
        if path in known:
            try:
                stat = file_stat(path)
            except OSError as exc:
                tally.errors.append((path, f"cannot stat: {exc}"))
                continue
            if stat == known[path]:
                unchanged += 1
            else:
                changed.append(path)
            continue
        todo.append(path)
    if changed:
        log.warning("%d file(s) changed since indexed (not re-indexed), e.g. %s", len(changed), changed[0])

    spec = BuildSpec(
        backend=backend,
        out=out,
        arrow_schema=backend.arrow_schema(extra_columns, scenes),
        options=options,
        part_rows=part_rows,
        tag=uuid.uuid4().hex[:6] if client is not None else "",
    )
    todo_named = {path: named[path] for path in todo}
    if client is not None:
        _run_distributed(client, spec, todo_named, tally, task_files, progress)
    else:
        created = _make_out_dir(out)  # an unwritable out_dir fails before any header is read
        writer = _RowWriter(spec, todo_named, tally, guard_concurrent=True)
        n_workers = workers if workers is not None else default_workers()
        bar = tqdm(total=len(todo), unit="file", desc=f"indexing {backend.name}", disable=not progress or not todo)
        try:
            for path, result in _results(backend.read_header, options, todo, n_workers, backend.read_env):
                bar.update(1)
                writer.add(path, result)
            writer.flush()
        except StorageError as exc:  # disk full, read-only …: the catalog stays as it was
            _roll_back(out, tally.parts, created)
            raise StorageError(f"{exc}; nothing of this build was kept") from None
        finally:
            bar.close()
    return BuildReport(
        indexed=tally.indexed,
        files_indexed=tally.files,
        unchanged=unchanged + tally.concurrent,
        changed=tuple(changed),
        errors=tuple(tally.errors),
        parts=tuple(tally.parts),
        skipped=len(skipped),
        skipped_examples=tuple(skipped[:SKIPPED_EXAMPLES]),
    )


def _outside(files: list[str], out: Path) -> list[str]:
    """``files`` minus those inside the catalog folder ``out`` (a build whose output lies inside
    its input never indexes its own parts)."""
    root = os.path.realpath(out)
    folder = lru_cache(maxsize=None)(os.path.realpath)  # per call: each parent folder resolved once

    def real(f: str) -> str:
        head, base = os.path.split(f.rstrip("/") or f)
        if base in ("", ".", "..") or os.path.islink(f.rstrip("/") or f):
            return os.path.realpath(f)
        return os.path.join(folder(head), base)

    inside = [f for f in files if "://" not in f and os.path.commonpath([root, real(f)]) == root]
    if inside:
        log.info("not indexing %d file(s) inside the catalog folder %s, e.g. %s", len(inside), root, inside[0])
        drop = set(inside)
        return [f for f in files if f not in drop]
    return files


def _make_out_dir(out: Path) -> bool:
    """Create the catalog folder if needed and check it is writable (the append lock file is
    created there); returns whether it was created. Raises :class:`StorageError`."""
    created = not out.exists()
    with store.storage_errors(out):
        try:
            out.mkdir(parents=True, exist_ok=True)
            with store.append_lock(out):
                pass
        except OSError:
            if created:
                _remove_empty_dir(out)
            raise
    return created


def _remove_empty_dir(out: Path) -> None:
    lock = out / store.APPEND_LOCK
    try:
        if not store.list_parts(out):
            (out / store.INDEX).unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        out.rmdir()
    except OSError:
        pass


def _roll_back(out: Path, parts: list[str], created: bool) -> None:
    """Delete the parts a failed build wrote (and the folder it created, if left empty)."""
    for part in parts:
        try:
            Path(part).unlink(missing_ok=True)
        except OSError as exc:
            log.error("could not remove %s of the failed build: %s", part, exc)
    if parts:
        store._fsync_dir(out)  # noqa: SLF001
        store.refresh_index(out)
    if created:
        _remove_empty_dir(out)


def _cluster_threads(client: Any) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception as exc:  # noqa: BLE001 - anything but a working Client
        raise ArgumentError(f"client={client!r} is not a connected dask.distributed.Client: {exc}") from None


def _run_distributed(
    client: Any, spec: BuildSpec, named: Named, tally: _Tally, task_files: int | None, progress: bool
) -> None:
    """Run :func:`build_task` over ``named`` cut into tasks on a dask cluster, at most two tasks per
    cluster thread in flight; merge their counts into ``tally``."""
    from distributed import as_completed

    threads = _cluster_threads(client)
    paths = list(named)
    if task_files is None:
        task_files = min(MAX_TASK_FILES, max(CHUNK_FILES, -(-len(paths) // (TASKS_PER_THREAD * threads))))
    elif isinstance(task_files, bool) or not isinstance(task_files, int) or task_files < 1:
        raise ArgumentError(f"task_files={task_files!r} must be a positive integer")
    tasks = iter(_chunks(paths, task_files))
    files_of: dict[Any, list[str]] = {}
    submitted = 0

    def submit(chunk: list[str]) -> Any:
        nonlocal submitted
        fut = client.submit(
            build_task, spec, {p: named[p] for p in chunk}, pure=False, key=f"geoduck-build-{spec.tag}-{submitted}"
        )
        files_of[fut.key] = chunk
        submitted += 1
        return fut

    bar = tqdm(
        total=len(paths),
        unit="file",
        disable=not progress or not paths,
        desc=f"indexing {spec.backend.name} on {threads} dask threads",
    )
    pending = as_completed([submit(c) for c in _take(tasks, 2 * threads)])
    try:
        for fut in pending:
            chunk = files_of.pop(fut.key)
            try:
                tally.merge(fut.result())
            except Exception as exc:  # noqa: BLE001 - a lost task is reported file by file
                reason = f"build task failed: {_reason(exc)}"
                tally.errors.extend((p, reason) for p in chunk)
                log.warning("%s (%d files, e.g. %s)", reason, len(chunk), chunk[0])
            fut.release()
            bar.update(len(chunk))
            nxt = next(tasks, None)
            if nxt is not None:
                pending.add(submit(nxt))
    except BaseException:
        client.cancel(pending.futures)  # an interrupted build keeps the parts written so far
        raise
    finally:
        bar.close()
    _remove_stray_parts(spec, tally)


def _take(items: Iterator[list[str]], n: int) -> list[list[str]]:
    return [chunk for _, chunk in zip(range(n), items, strict=False)]


def _remove_stray_parts(spec: BuildSpec, tally: _Tally) -> None:
    """Delete parts of this build that no task reported: written by an attempt of a task that then
    failed or was run again (e.g. its worker died), so their rows are reported elsewhere."""
    if not spec.out.is_dir():
        return
    reported = {os.path.basename(p) for p in tally.parts}
    for part in store.list_parts(spec.out):
        if store.part_tag(part.name) == spec.tag and part.name not in reported:
            log.warning("removing %s: written by a failed or repeated build task", part)
            part.unlink(missing_ok=True)


def build_catalog(
    backend: Backend,
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    options: Any,
    parser: FilenameParser,
    workers: int | None,
    progress: bool,
    client: Any,
) -> Catalog:
    """:func:`run_build` then :func:`finish_build`: what every ``build_<backend>_catalog`` does."""
    report = run_build(
        paths,
        out_dir,
        backend=backend,
        options=options,
        parser=parser,
        workers=workers,
        progress=progress,
        client=client,
    )
    return finish_build(out_dir, paths, report)


def finish_build(out_dir: str | os.PathLike[str], paths: object, report: BuildReport) -> Catalog:
    """Open the built catalog; a build that left it without any part says why."""
    from ..catalog import open_catalog

    out_dir = store.local_path(out_dir)
    if not store.list_parts(out_dir):
        examples = "; ".join(f"{p}: {r}" for p, r in report.errors[:3])
        raise BuildError(f"no file in {paths!r} could be indexed ({len(report.errors)} errors): {examples}")
    return open_catalog(out_dir, build_report=report)
