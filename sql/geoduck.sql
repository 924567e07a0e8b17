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

-- The part names a geoduck reader reads in one catalog folder: the listed parts, judged by the
-- manifest's pending replacements as geoduck does (a replacement whose new parts all exist gives
-- its new parts, else its old ones), so an unfinished or crashed compaction is never counted twice.
-- parts_glob: '<dir>/*.parquet'; manifest_glob: '<dir>/_geoduck_manifest.jso[n]' (a glob, so a
-- catalog without a manifest reads as none). Example:
--   SELECT * FROM geoduck_live_parts('cat/*.parquet', 'cat/_geoduck_manifest.jso[n]');
CREATE OR REPLACE MACRO geoduck_live_parts(parts_glob, manifest_glob) AS TABLE
    WITH listed AS (SELECT parse_filename(file) AS name FROM glob(parts_glob)),
    entries AS (
        SELECT unnest(from_json(content, '{"replacements": [{"replaces": ["VARCHAR"], "by": ["VARCHAR"]}]}')
                          .replacements) AS e
        FROM read_text(manifest_glob)),
    judged AS (
        SELECT e.replaces AS old, e."by" AS new,
               list_has_all((SELECT coalesce(list(name), []) FROM listed), e."by") AS switched
        FROM entries)
    SELECT name FROM listed
    WHERE name NOT IN (SELECT unnest(old || new) FROM judged)
       OR name IN (SELECT unnest(CASE WHEN switched THEN new ELSE old END) FROM judged);

-- The rows of a catalog folder as geoduck reads them (its live parts only; see geoduck_live_parts).
-- Example: SELECT count(*) FROM geoduck_catalog('cat/*.parquet', 'cat/_geoduck_manifest.jso[n]');
CREATE OR REPLACE MACRO geoduck_catalog(parts_glob, manifest_glob) AS TABLE
    SELECT * EXCLUDE (geoduck_part)
    FROM read_parquet(parts_glob, union_by_name = true, hive_partitioning = false, filename = 'geoduck_part')
    WHERE parse_filename(geoduck_part) IN (SELECT name FROM geoduck_live_parts(parts_glob, manifest_glob));

-- Recommended geoduck_intersect tuning for two catalogs: the same rule as the Python engine
-- (cell = 1.3 × the larger median bbox side in degrees; bucket = the larger median interval + 1 µs).
CREATE OR REPLACE MACRO geoduck_join_params(left_glob, right_glob) AS TABLE
    WITH stats AS (
        SELECT approx_quantile(bbox.xmax - bbox.xmin, 0.5) AS w,
               approx_quantile(bbox.ymax - bbox.ymin, 0.5) AS h,
               approx_quantile(epoch_us(end_datetime) - epoch_us(start_datetime), 0.5) AS d
        FROM read_parquet(left_glob, union_by_name = true, hive_partitioning = false)
        UNION ALL
        SELECT approx_quantile(bbox.xmax - bbox.xmin, 0.5), approx_quantile(bbox.ymax - bbox.ymin, 0.5),
               approx_quantile(epoch_us(end_datetime) - epoch_us(start_datetime), 0.5)
        FROM read_parquet(right_glob, union_by_name = true, hive_partitioning = false))
    SELECT least(greatest(coalesce(1.3 * nullif(greatest(max(w), max(h)), 0), 1.0), 1e-6), 360.0) AS cell,
           coalesce(nullif(max(d), 0)::BIGINT + 1, 86400000000) AS bucket_us
    FROM stats;

-- Spatiotemporal intersection of two catalogs: one row per pair whose footprints intersect and
-- (unless spatial_only) whose closed intervals overlap; static rows overlap every interval.
-- Same plan as geoduck's Catalog.intersect (hash joins on time-bucket × grid-cell keys); exact
-- for any cell/bucket_us, which only tune speed (see geoduck_join_params).
-- Example: SELECT left_id, right_id FROM geoduck_intersect('s2/*.parquet', 'labels/*.parquet');
-- BEGIN GENERATED: geoduck_intersect (geoduck.compiler.update_macro_file(); do not edit)
CREATE OR REPLACE MACRO geoduck_intersect(left_glob, right_glob, cell := 1.0,
                                          bucket_us := 86400000000, spatial_only := false) AS TABLE
WITH _left_side AS NOT MATERIALIZED (
  SELECT
    *
  FROM READ_PARQUET(left_glob, union_by_name = TRUE, hive_partitioning = FALSE)
), _right_side AS NOT MATERIALIZED (
  SELECT
    *
  FROM READ_PARQUET(right_glob, union_by_name = TRUE, hive_partitioning = FALSE)
)
SELECT
  p.lid || '|' || p.rid AS id,
  p.lid AS left_id,
  p.rid AS right_id,
  ST_INTERSECTION(l.geometry, r.geometry) AS geometry,
  GREATEST(l.start_datetime, r.start_datetime) AS start_datetime,
  LEAST(l.end_datetime, r.end_datetime) AS end_datetime,
  l.filepath AS left_filepath,
  r.filepath AS right_filepath
FROM (
  WITH lk AS MATERIALIZED (
    SELECT
      *,
      ROW_NUMBER() OVER () AS _n
    FROM (
      SELECT
        *,
        CASE
          WHEN nx * ny > 64
          THEN 'B'
          WHEN (
            NOT spatial_only
          ) AND NOT s IS NULL AND nt <= 64
          THEN 'T'
          ELSE 'C'
        END AS cls
      FROM (
        SELECT
          _id,
          x0,
          y0,
          x1,
          y1,
          s,
          e,
          cx0,
          cy0,
          tb0,
          cx1 - cx0 + 1 AS nx,
          cy1 - cy0 + 1 AS ny,
          tb1 - tb0 + 1 AS nt
        FROM (
          SELECT
            id AS _id,
            bbox.xmin AS x0,
            bbox.ymin AS y0,
            bbox.xmax AS x1,
            bbox.ymax AS y1,
            start_datetime AS s,
            end_datetime AS e,
            CAST(FLOOR(bbox.xmin / cell) AS BIGINT) AS cx0,
            CAST(FLOOR(bbox.xmax / cell) AS BIGINT) AS cx1,
            CAST(FLOOR(bbox.ymin / cell) AS BIGINT) AS cy0,
            CAST(FLOOR(bbox.ymax / cell) AS BIGINT) AS cy1,
            CAST(FLOOR(EPOCH_US(start_datetime) / bucket_us) AS BIGINT) AS tb0,
            CAST(FLOOR(EPOCH_US(end_datetime) / bucket_us) AS BIGINT) AS tb1
          FROM (
            SELECT
              *
            FROM _left_side
          ) AS child
        )
      )
    ) AS lkeys
  ), rk AS MATERIALIZED (
    SELECT
      *,
      ROW_NUMBER() OVER () AS _n
    FROM (
      SELECT
        *,
        CASE
          WHEN nx * ny > 64
          THEN 'B'
          WHEN (
            NOT spatial_only
          ) AND NOT s IS NULL AND nt <= 64
          THEN 'T'
          ELSE 'C'
        END AS cls
      FROM (
        SELECT
          _id,
          x0,
          y0,
          x1,
          y1,
          s,
          e,
          cx0,
          cy0,
          tb0,
          cx1 - cx0 + 1 AS nx,
          cy1 - cy0 + 1 AS ny,
          tb1 - tb0 + 1 AS nt
        FROM (
          SELECT
            id AS _id,
            bbox.xmin AS x0,
            bbox.ymin AS y0,
            bbox.xmax AS x1,
            bbox.ymax AS y1,
            start_datetime AS s,
            end_datetime AS e,
            CAST(FLOOR(bbox.xmin / cell) AS BIGINT) AS cx0,
            CAST(FLOOR(bbox.xmax / cell) AS BIGINT) AS cx1,
            CAST(FLOOR(bbox.ymin / cell) AS BIGINT) AS cy0,
            CAST(FLOOR(bbox.ymax / cell) AS BIGINT) AS cy1,
            CAST(FLOOR(EPOCH_US(start_datetime) / bucket_us) AS BIGINT) AS tb0,
            CAST(FLOOR(EPOCH_US(end_datetime) / bucket_us) AS BIGINT) AS tb1
          FROM (
            SELECT
              *
            FROM _right_side
          ) AS child
        )
      )
    ) AS rkeys
  ), lt AS (
    SELECT
      _n,
      x0,
      y0,
      x1,
      y1,
      s,
      e,
      tb0 + i // (
        nx * ny
      ) AS tb,
      cx0 + (
        i % (
          nx * ny
        )
      ) // ny AS cx,
      cy0 + i % ny AS cy
    FROM (
      SELECT
        *,
        UNNEST(RANGE(0, nt * nx * ny)) AS i
      FROM lk
      WHERE
        cls = 'T'
    )
  ), rt AS (
    SELECT
      _n,
      x0,
      y0,
      x1,
      y1,
      s,
      e,
      tb0 + i // (
        nx * ny
      ) AS tb,
      cx0 + (
        i % (
          nx * ny
        )
      ) // ny AS cx,
      cy0 + i % ny AS cy
    FROM (
      SELECT
        *,
        UNNEST(RANGE(0, nt * nx * ny)) AS i
      FROM rk
      WHERE
        cls = 'T'
    )
  ), lc AS NOT MATERIALIZED (
    SELECT
      _n,
      x0,
      y0,
      x1,
      y1,
      s,
      e,
      cx0 + i // ny AS cx,
      cy0 + i % ny AS cy
    FROM (
      SELECT
        *,
        UNNEST(RANGE(0, nx * ny)) AS i
      FROM lk
      WHERE
        cls = 'C'
    )
  ), rc AS NOT MATERIALIZED (
    SELECT
      _n,
      x0,
      y0,
      x1,
      y1,
      s,
      e,
      cx0 + i // ny AS cx,
      cy0 + i % ny AS cy
    FROM (
      SELECT
        *,
        UNNEST(RANGE(0, nx * ny)) AS i
      FROM rk
      WHERE
        cls = 'C'
    )
  ), lx AS NOT MATERIALIZED (
    SELECT
      _n,
      x0,
      y0,
      x1,
      y1,
      s,
      e,
      cx0 + i // ny AS cx,
      cy0 + i % ny AS cy
    FROM (
      SELECT
        *,
        UNNEST(RANGE(0, nx * ny)) AS i
      FROM lk
      WHERE
        cls = 'T'
        AND cls IN (
          SELECT
            'T'
          FROM rk
          WHERE
            cls = 'C'
          LIMIT 1
        )
    )
  ), rx AS NOT MATERIALIZED (
    SELECT
      _n,
      x0,
      y0,
      x1,
      y1,
      s,
      e,
      cx0 + i // ny AS cx,
      cy0 + i % ny AS cy
    FROM (
      SELECT
        *,
        UNNEST(RANGE(0, nx * ny)) AS i
      FROM rk
      WHERE
        (
          cls <> 'B'
        ) IN (
          SELECT
            TRUE
          FROM lk
          WHERE
            cls = 'C'
          LIMIT 1
        )
    )
  ), p_tt AS (
    SELECT
      a._n AS ln,
      b._n AS rn
    FROM lt AS a
    JOIN rt AS b
      ON a.tb = b.tb AND a.cx = b.cx AND a.cy = b.cy
    WHERE
      a.x0 <= b.x1
      AND a.x1 >= b.x0
      AND a.y0 <= b.y1
      AND a.y1 >= b.y0
      AND a.s <= b.e
      AND a.e >= b.s
      AND a.tb = CAST(FLOOR(EPOCH_US(GREATEST(a.s, b.s)) / bucket_us) AS BIGINT)
      AND a.cx = CAST(FLOOR(GREATEST(a.x0, b.x0) / cell) AS BIGINT)
      AND a.cy = CAST(FLOOR(GREATEST(a.y0, b.y0) / cell) AS BIGINT)
  ), p_cl AS (
    SELECT
      a._n AS ln,
      b._n AS rn
    FROM lc AS a
    JOIN rx AS b
      ON a.cx = b.cx AND a.cy = b.cy
    WHERE
      a.x0 <= b.x1
      AND a.x1 >= b.x0
      AND a.y0 <= b.y1
      AND a.y1 >= b.y0
      AND (
        NOT (
          NOT spatial_only
        )
        OR (
          (
            a.s IS NULL OR b.e IS NULL OR a.s <= b.e
          )
          AND (
            a.e IS NULL OR b.s IS NULL OR a.e >= b.s
          )
        )
      )
      AND a.cx = CAST(FLOOR(GREATEST(a.x0, b.x0) / cell) AS BIGINT)
      AND a.cy = CAST(FLOOR(GREATEST(a.y0, b.y0) / cell) AS BIGINT)
  ), p_cr AS (
    SELECT
      a._n AS ln,
      b._n AS rn
    FROM lx AS a
    JOIN rc AS b
      ON a.cx = b.cx AND a.cy = b.cy
    WHERE
      a.x0 <= b.x1
      AND a.x1 >= b.x0
      AND a.y0 <= b.y1
      AND a.y1 >= b.y0
      AND (
        NOT (
          NOT spatial_only
        )
        OR (
          (
            a.s IS NULL OR b.e IS NULL OR a.s <= b.e
          )
          AND (
            a.e IS NULL OR b.s IS NULL OR a.e >= b.s
          )
        )
      )
      AND a.cx = CAST(FLOOR(GREATEST(a.x0, b.x0) / cell) AS BIGINT)
      AND a.cy = CAST(FLOOR(GREATEST(a.y0, b.y0) / cell) AS BIGINT)
  ), p_bl AS (
    SELECT
      a._n AS ln,
      b._n AS rn
    FROM (
      SELECT
        *
      FROM lk
      WHERE
        cls = 'B'
    ) AS a
    JOIN (
      SELECT
        *
      FROM rk
      WHERE
        (
          NOT cls IS NULL
        ) IN (
          SELECT
            TRUE
          FROM lk
          WHERE
            cls = 'B'
          LIMIT 1
        )
    ) AS b
      ON a.x0 <= b.x1 AND a.x1 >= b.x0 AND a.y0 <= b.y1 AND a.y1 >= b.y0
    WHERE
      (
        NOT (
          NOT spatial_only
        )
        OR (
          (
            a.s IS NULL OR b.e IS NULL OR a.s <= b.e
          )
          AND (
            a.e IS NULL OR b.s IS NULL OR a.e >= b.s
          )
        )
      )
  ), p_br AS (
    SELECT
      a._n AS ln,
      b._n AS rn
    FROM (
      SELECT
        *
      FROM lk
      WHERE
        (
          cls <> 'B'
        ) IN (
          SELECT
            TRUE
          FROM rk
          WHERE
            cls = 'B'
          LIMIT 1
        )
    ) AS a
    JOIN (
      SELECT
        *
      FROM rk
      WHERE
        cls = 'B'
    ) AS b
      ON a.x0 <= b.x1 AND a.x1 >= b.x0 AND a.y0 <= b.y1 AND a.y1 >= b.y0
    WHERE
      (
        NOT (
          NOT spatial_only
        )
        OR (
          (
            a.s IS NULL OR b.e IS NULL OR a.s <= b.e
          )
          AND (
            a.e IS NULL OR b.s IS NULL OR a.e >= b.s
          )
        )
      )
  ), pairs AS MATERIALIZED (
    SELECT
      *
    FROM p_tt
    UNION ALL
    SELECT
      *
    FROM p_cl
    UNION ALL
    SELECT
      *
    FROM p_cr
    UNION ALL
    SELECT
      *
    FROM p_bl
    UNION ALL
    SELECT
      *
    FROM p_br
  )
  SELECT DISTINCT
    l._id AS lid,
    r._id AS rid
  FROM pairs AS p
  JOIN lk AS l
    ON l._n = p.ln
  JOIN rk AS r
    ON r._n = p.rn
) AS p
JOIN (
  SELECT
    *
  FROM _left_side
) AS l
  ON "l"."id" = p.lid
JOIN (
  SELECT
    *
  FROM _right_side
) AS r
  ON "r"."id" = p.rid
WHERE
  ST_INTERSECTS("l"."geometry", "r"."geometry");
-- END GENERATED: geoduck_intersect
