"""Loaders: catalog rows → georeferenced arrays on a GeoSlice grid, one module per backend."""
