WITH _left_side AS NOT MATERIALIZED (
  SELECT
    *
  FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
), _right_side AS NOT MATERIALIZED (
  SELECT
    *
  FROM READ_PARQUET(
    '/data/catalogs/landsat 8/*.parquet',
    union_by_name = TRUE,
    hive_partitioning = FALSE
  )
)
SELECT
  *
FROM (
  SELECT
    *
  FROM _left_side
) AS _d
WHERE
  NOT "id" IN (
    SELECT
      p.lid
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
              WHEN FALSE AND NOT s IS NULL AND nt <= 64
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
                CAST(FLOOR(bbox.xmin / 0.25) AS BIGINT) AS cx0,
                CAST(FLOOR(bbox.xmax / 0.25) AS BIGINT) AS cx1,
                CAST(FLOOR(bbox.ymin / 0.25) AS BIGINT) AS cy0,
                CAST(FLOOR(bbox.ymax / 0.25) AS BIGINT) AS cy1,
                CAST(FLOOR(EPOCH_US(start_datetime) / 86400000001) AS BIGINT) AS tb0,
                CAST(FLOOR(EPOCH_US(end_datetime) / 86400000001) AS BIGINT) AS tb1
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
              WHEN FALSE AND NOT s IS NULL AND nt <= 64
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
                CAST(FLOOR(bbox.xmin / 0.25) AS BIGINT) AS cx0,
                CAST(FLOOR(bbox.xmax / 0.25) AS BIGINT) AS cx1,
                CAST(FLOOR(bbox.ymin / 0.25) AS BIGINT) AS cy0,
                CAST(FLOOR(bbox.ymax / 0.25) AS BIGINT) AS cy1,
                CAST(FLOOR(EPOCH_US(start_datetime) / 86400000001) AS BIGINT) AS tb0,
                CAST(FLOOR(EPOCH_US(end_datetime) / 86400000001) AS BIGINT) AS tb1
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
          AND a.tb = CAST(FLOOR(EPOCH_US(GREATEST(a.s, b.s)) / 86400000001) AS BIGINT)
          AND a.cx = CAST(FLOOR(GREATEST(a.x0, b.x0) / 0.25) AS BIGINT)
          AND a.cy = CAST(FLOOR(GREATEST(a.y0, b.y0) / 0.25) AS BIGINT)
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
            NOT FALSE
            OR (
              (
                a.s IS NULL OR b.e IS NULL OR a.s <= b.e
              )
              AND (
                a.e IS NULL OR b.s IS NULL OR a.e >= b.s
              )
            )
          )
          AND a.cx = CAST(FLOOR(GREATEST(a.x0, b.x0) / 0.25) AS BIGINT)
          AND a.cy = CAST(FLOOR(GREATEST(a.y0, b.y0) / 0.25) AS BIGINT)
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
            NOT FALSE
            OR (
              (
                a.s IS NULL OR b.e IS NULL OR a.s <= b.e
              )
              AND (
                a.e IS NULL OR b.s IS NULL OR a.e >= b.s
              )
            )
          )
          AND a.cx = CAST(FLOOR(GREATEST(a.x0, b.x0) / 0.25) AS BIGINT)
          AND a.cy = CAST(FLOOR(GREATEST(a.y0, b.y0) / 0.25) AS BIGINT)
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
            NOT FALSE
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
            NOT FALSE
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
      ST_INTERSECTS("l"."geometry", "r"."geometry")
  )
