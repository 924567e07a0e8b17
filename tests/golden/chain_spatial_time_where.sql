SELECT
  *
FROM READ_PARQUET('/data/catalogs/s2/*.parquet', union_by_name = TRUE, hive_partitioning = FALSE)
WHERE
  (
    (
      (
        "bbox".xmin <= -4.0
        AND "bbox".xmax >= -5.5
        AND "bbox".ymin <= 40.75
        AND "bbox".ymax >= 39.25
      )
      AND ST_INTERSECTS(
        "geometry",
        ST_GEOMFROMHEXWKB(
          '0103000000010000000500000000000000000010C00000000000A0434000000000000010C0000000000060444000000000000016C0000000000060444000000000000016C00000000000A0434000000000000010C00000000000A04340'
        )
      )
    )
    AND (
      (
        "start_datetime" <= CAST('2023-06-30T23:59:59.999999+00:00' AS TIMESTAMPTZ)
        OR "start_datetime" IS NULL
      )
      AND (
        "end_datetime" >= CAST('2023-01-01T00:00:00+00:00' AS TIMESTAMPTZ)
        OR "end_datetime" IS NULL
      )
    )
  )
  AND tile = 'T29SND'
