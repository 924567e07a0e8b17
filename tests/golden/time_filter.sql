SELECT
  *
FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
WHERE
  (
    "start_datetime" <= CAST('2023-06-30T23:59:59.999999+00:00' AS TIMESTAMPTZ)
    OR "start_datetime" IS NULL
  )
  AND (
    "end_datetime" >= CAST('2023-01-01T00:00:00+00:00' AS TIMESTAMPTZ)
    OR "end_datetime" IS NULL
  )
