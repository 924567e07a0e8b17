SELECT
  *
  REPLACE (start_datetime - TO_MICROSECONDS(259200000000) AS start_datetime, end_datetime + TO_MICROSECONDS(86400000000) AS end_datetime)
FROM (
  SELECT
    *
  FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
) AS child
