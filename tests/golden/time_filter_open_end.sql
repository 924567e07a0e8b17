SELECT
  *
FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
WHERE
  (
    "end_datetime" >= CAST('2023-01-01T00:00:00+00:00' AS TIMESTAMPTZ)
    OR "end_datetime" IS NULL
  )
