-- geoduck SQL macros for DuckDB (load with `.read sql/geoduck.sql` in the DuckDB CLI).
-- The Python engine runs this same file on every connection it opens.
-- Catalog rows: footprints in EPSG:4326 (lon/lat); `bbox` is the GeoParquet 1.1 covering;
-- intervals [start_datetime, end_datetime] are closed, UTC; both NULL = static (matches any time).

-- Does a row's closed interval overlap [t0, t1]? NULL t0/t1 = open-ended; NULL row ends = static.
CREATE OR REPLACE MACRO geoduck_time_overlaps(row_start, row_end, t0, t1) AS
    (row_start IS NULL OR t1 IS NULL OR row_start <= t1)
    AND (row_end IS NULL OR t0 IS NULL OR row_end >= t0);

-- Rows of a catalog whose footprint intersects the lon/lat box and whose interval overlaps
-- [t0, t1]. The bbox inequalities come first so DuckDB prunes Parquet row groups; the exact
-- ST_Intersects runs on the survivors. Pass NULL for t0/t1 to leave time open.
-- Example: SELECT * FROM geoduck_query('catalog/*.parquet', -4, 36, -3, 37,
--                                      TIMESTAMPTZ '2023-06-01', TIMESTAMPTZ '2023-06-30 23:59:59.999999');
CREATE OR REPLACE MACRO geoduck_query(path_glob, xmin, ymin, xmax, ymax, t0, t1) AS TABLE
    SELECT *
    FROM read_parquet(path_glob, union_by_name = true, hive_partitioning = false)
    WHERE bbox.xmin <= xmax AND bbox.xmax >= xmin
      AND bbox.ymin <= ymax AND bbox.ymax >= ymin
      AND (start_datetime IS NULL OR t1 IS NULL OR start_datetime <= t1::TIMESTAMPTZ)
      AND (end_datetime IS NULL OR t0 IS NULL OR end_datetime >= t0::TIMESTAMPTZ)
      AND ST_Intersects(geometry, ST_MakeEnvelope(xmin, ymin, xmax, ymax));
