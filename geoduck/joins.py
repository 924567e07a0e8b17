"""User tables joined to a catalog (:meth:`geoduck.catalog.Catalog.join`): converting a pandas
DataFrame, GeoDataFrame or Arrow table into the Arrow table the query reads, and checking it.

Rules (each broken rule raises :class:`~geoduck.errors.JoinError` naming the column and the fix):

- the key columns ``on`` exist in the table (a named pandas index counts) and in the catalog;
- key values are non-null and unique in the table: a join never repeats a catalog row (to attach
  several values per row, aggregate them first, e.g. into a list column);
- the table's other columns do not clash with the catalog's (DuckDB names are case-insensitive);
- the key types compare: text with text, integers with integers.

A GeoDataFrame's active geometry column is dropped (a logged warning): the joined rows keep the catalog's
footprints. Its other geometry columns are refused.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import JoinError
from .expr import UserTable

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

HOWS = ("inner", "left")


def keys_of(on: str | Sequence[str]) -> tuple[str, ...]:
    """``on`` as a non-empty tuple of distinct column names."""
    keys = (on,) if isinstance(on, str) else tuple(on) if isinstance(on, Sequence) else None
    if not keys or not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
        raise JoinError(f"on= must be a column name or a list of distinct column names, got {on!r}")
    return keys


def to_arrow(table: Any, keys: tuple[str, ...]) -> pa.Table:
    """The user ``table`` (pandas DataFrame, GeoDataFrame, Arrow Table/RecordBatch or any object
    with ``__arrow_c_stream__``) as an Arrow table without index or active geometry column."""
    pandas = sys.modules.get("pandas")  # not imported: the table cannot be a DataFrame
    if pandas is not None and isinstance(table, pandas.DataFrame):
        frame = _drop_geometry(table)
        missing = [k for k in keys if k not in frame.columns]
        if missing and all(k in frame.columns or k in frame.index.names for k in keys):
            frame = frame.reset_index()  # keys held in a (named) index
        try:
            return pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise JoinError(f"cannot convert the table to Arrow: {str(exc).splitlines()[0]}") from None
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "__arrow_c_stream__"):
        return pa.table(table)
    raise JoinError(f"join() takes a pandas DataFrame, GeoDataFrame or pyarrow Table, got {type(table).__name__}")


def _drop_geometry(frame: pd.DataFrame) -> pd.DataFrame:
    import geopandas as gpd
    import pandas as pd

    if not isinstance(frame, gpd.GeoDataFrame):
        return frame
    active = frame.active_geometry_name  # None when no geometry column is active
    others = [c for c in frame.columns if c != active and isinstance(frame[c].dtype, gpd.array.GeometryDtype)]
    if others:
        raise JoinError(
            f"the table's geometry columns {others} cannot be joined (the catalog rows keep their "
            "footprints): drop them, or convert them to WKB/WKT columns first"
        )
    if active is None:
        return pd.DataFrame(frame)
    log.warning("join(): dropping the GeoDataFrame's geometry column %r (rows keep the catalog's footprints)", active)
    return pd.DataFrame(frame.drop(columns=[active]))


def check(table: pa.Table, keys: tuple[str, ...], catalog: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """Check ``table`` against the rules of this module for a catalog of ``(name, DuckDB type)``
    columns; returns the table's non-key columns (added to the rows, in order)."""
    names = table.column_names
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise JoinError(f"the table has repeated column names {repeated}: rename them")
    types = dict(catalog)
    for k in keys:
        if k not in names:
            raise JoinError(f"key column {k!r} is not in the table (columns: {', '.join(names)})")
        if k not in types:
            raise JoinError(f"key column {k!r} is not a catalog column (columns: {', '.join(types)})")
        _check_type(k, table.schema.field(k).type, types[k])
        nulls = table.column(k).null_count
        if nulls:
            raise JoinError(f"key column {k!r} of the table holds {nulls} null values: drop those rows")
    _check_unique(table, keys)
    taken = {c.lower(): c for c in types}
    extra = tuple(n for n in names if n not in keys)
    clashes = [n for n in extra if n.lower() in taken]
    if clashes:
        fix = ", ".join(f"{n!r}: 'user_{n}'" for n in clashes)
        raise JoinError(
            f"the table's columns {clashes} clash with catalog columns "
            f"{[taken[n.lower()] for n in clashes]}: rename them, e.g. table.rename(columns={{{fix}}}) "
            "(pandas) or select only the columns to add"
        )
    return extra


_TEXT = ("VARCHAR",)
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


def _check_type(key: str, arrow_type: pa.DataType, duck_type: str) -> None:
    """Refuse keys whose types DuckDB would compare by a cast that fails or misleads."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type)
    if (duck_type in _TEXT) != text or (duck_type in _INTEGERS and not pa.types.is_integer(arrow_type)):
        raise JoinError(
            f"key column {key!r} is {duck_type} in the catalog but {arrow_type} in the table: "
            "convert the table's column (e.g. .astype(str))"
        )


def _check_unique(table: pa.Table, keys: tuple[str, ...]) -> None:
    # a hash group-by of the keys: ~2x faster than pc.count_distinct on 10^6 ids (bench_join.py)
    distinct = table.select(list(keys)).group_by(list(keys)).aggregate([]).num_rows
    if distinct == table.num_rows:
        return
    counts = table.group_by(list(keys)).aggregate([([], "count_all")])
    import pyarrow.compute as pc  # (not imported by queries without a join)

    repeated = counts.filter(pc.greater(counts.column("count_all"), 1)).slice(0, 3).select(list(keys)).to_pylist()
    shown = [r[keys[0]] if len(keys) == 1 else tuple(r.values()) for r in repeated]
    raise JoinError(
        f"key {'column' if len(keys) == 1 else 'columns'} {', '.join(keys)} of the table repeat "
        f"{table.num_rows - distinct} times (e.g. {shown}): a join may not repeat catalog rows; "
        "keep one row per key (drop_duplicates) or aggregate the values per key first"
    )


def user_table(table: pa.Table) -> UserTable:
    """``table`` under an opaque generated name (what the SQL text reads)."""
    plain = pa.Table.from_arrays(
        [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns],
        names=table.column_names,
    )
    return UserTable(f"_geoduck_table_{uuid.uuid4().hex}", plain)
