"""Builders: files → catalog rows → GeoParquet parts, one module per backend."""
