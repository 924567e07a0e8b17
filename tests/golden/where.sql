SELECT
  *
FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
WHERE
  tile = 'T29SND' AND cloud_cover < 20
