SELECT
  *
FROM (
  SELECT
    *
    EXCLUDE (_ord)
  FROM (
    SELECT
      *,
      's2' AS source,
      0 AS _ord
    FROM (
      SELECT
        *
      FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
    ) AS _u
    UNION ALL BY NAME
    SELECT
      *,
      'landsat 8' AS source,
      1 AS _ord
    FROM (
      SELECT
        *
      FROM READ_PARQUET(
        '/data/catalogs/landsat 8/*.parquet',
        union_by_name = TRUE,
        hive_partitioning = FALSE
      )
    ) AS _u
  ) AS _union
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY _ord) = 1
) AS _rel
WHERE
  source = 'landsat 8'
