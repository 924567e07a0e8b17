SELECT
  *
FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
