"""Dataset schema, netCDF I/O and the shipped presets (``memdrift/data/presets``)."""
